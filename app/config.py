"""Settings: built-in defaults < TOML file < WXSURVEY_<SECTION>_<KEY> environment variables.

Every key is declared in DEFAULTS with its type; unknown keys and malformed values raise a
ConfigError whose message names the key, so a typo never silently becomes a default.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from app.config_checks import MODES, per_endpoint, validate
from app.errors import ConfigError

__all__ = ["MODES", "ConfigError", "Settings", "load_settings", "per_endpoint"]

# --- the settings, section by section: each field's default is the built-in one ---------------------


@dataclass
class AppSettings:
    secret_key: str = ""
    base_url: str = ""  # empty: in dev mode http://{host}:{port}; production must set it (https)
    mode: str = "dev"
    host: str = "127.0.0.1"
    port: int = 5000
    var_dir: str = "var"
    account_name: str = "市民意调查"
    web_workers: int = 2
    web_threads: int = 32
    log_level: str = "INFO"
    timezone: str = "Asia/Shanghai"  # the city's clock (app.clock): its "today" and calendar days
    fast_paths: bool = True  # the WSGI fast paths in front of Flask (app/fast/); off: Flask answers all
    log_format: str = "text"
    metrics_token: str = ""
    trusted_proxies: str = ""  # app.security.client_address: count of proxy hops or comma-separated CIDRs


@dataclass
class DatabaseSettings:
    url: str = ""
    echo: bool = False
    pool_size: int = 5


@dataclass
class RedisSettings:
    url: str = ""
    queue_url: str = ""  # RQ's plain Redis (required with a redis+cluster:// url); empty = url
    embedded_appendfsync: str = "everysec"
    ack_replicas: int = 0  # replicas that must hold an answer before the thank-you page (WAIT)
    ack_timeout_ms: int = 100


@dataclass
class WechatSettings:
    appid: str = ""
    secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    previous_encoding_aes_key: str = ""
    api_base_url: str = "https://api.weixin.qq.com"
    oauth_base_url: str = "https://open.weixin.qq.com"
    require_wechat_browser: bool = True
    timestamp_tolerance: int = 300
    max_body_bytes: int = 65536
    simulator: bool = True
    scan_reply: str = "news"  # "news": a card (图文消息) with the department's picture; "text": a link
    scan_pass_seconds: int = 600  # a scan's link opens the form without OAuth for this long, once (0: off)
    # Where the simulator's fake WeChat API and OAuth run ("" = under /dev/wechat of the web app).
    simulator_url: str = ""
    simulator_port: int = 5001
    # Per endpoint ("path=value,...", "*" for the rest): WeChat-like latency and error rate.
    simulator_latency_ms: str = "sns/oauth2/access_token=80"
    simulator_error_rate: str = "*=0.001"


@dataclass
class SurveySettings:
    respondent_secret: str = ""
    min_sample: int = 30
    text_max_length: int = 500
    drain_batch_size: int = 5000
    scan_window_hours: int = 24
    straightline_min_questions: int = 4
    intake_shards: int = 1  # the intake stream split by department (app/intake/shards.py)


@dataclass
class ExportsSettings:
    dir: str = "var/exports"
    push_secret: str = ""
    push_timeout: int = 10
    push_retries: int = 5
    push_backoff: int = 30
    schedules: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class QrSettings:
    font_path: str = ""


@dataclass
class CasesSettings:
    """The 差评 follow-up loop (app/cases): the contact's key, deadlines and the citizen's notice."""

    contact_key: str = ""
    previous_contact_keys: str = ""
    deadline_working_days: int = 5
    contact_days: int = 60
    notify_template_id: str = ""
    notify_retries: int = 5
    notify_backoff: int = 30


@dataclass
class LimitsSettings:
    """Rate limits (app.security.rate_limits): requests per `window` seconds; 0 switches one off."""

    window: int = 60
    submissions_per_prefix: int = 1200
    logins_per_prefix: int = 30
    api_per_token: int = 1200
    webhook_per_openid: int = 60


@dataclass
class IntegritySettings:
    enabled: bool = True  # the stuffing detector in the drain (app/integrity/)
    threshold: int = 55  # a score at or above it quarantines the response


@dataclass
class Settings:
    """All sections, typed: settings.wechat.token. Built by load_settings, never by hand."""

    app: AppSettings = field(default_factory=AppSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    wechat: WechatSettings = field(default_factory=WechatSettings)
    survey: SurveySettings = field(default_factory=SurveySettings)
    exports: ExportsSettings = field(default_factory=ExportsSettings)
    qr: QrSettings = field(default_factory=QrSettings)
    cases: CasesSettings = field(default_factory=CasesSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    integrity: IntegritySettings = field(default_factory=IntegritySettings)

    @property
    def is_production(self) -> bool:
        return self.app.mode == "production"

    @property
    def var_dir(self) -> Path:
        return Path(self.app.var_dir).resolve()


SECTIONS: dict[str, Any] = {
    "app": AppSettings, "database": DatabaseSettings, "redis": RedisSettings, "wechat": WechatSettings,
    "survey": SurveySettings, "exports": ExportsSettings, "qr": QrSettings,
    "cases": CasesSettings, "limits": LimitsSettings, "integrity": IntegritySettings,
}  # fmt: skip
# The built-in defaults, section -> key -> value: every key a file or the environment may set.
DEFAULTS: dict[str, dict[str, Any]] = {
    name: {f.name: getattr(section(), f.name) for f in fields(section)} for name, section in SECTIONS.items()
}

# Secrets production refuses to start without, in the order they are reported.
PRODUCTION_SECRETS = (
    ("app", "secret_key"),
    ("survey", "respondent_secret"),
    ("wechat", "appid"),
    ("wechat", "secret"),
    ("wechat", "token"),
)
# Secrets dev mode generates once and keeps in var/dev-secrets.toml.
DEV_GENERATED = (("app", "secret_key"), ("survey", "respondent_secret"), ("cases", "contact_key"))
# Fixed credentials of the built-in WeChat simulator, used in dev mode when none are set.
DEV_WECHAT = {
    "appid": "wxdev0000simulator",
    "secret": "dev-simulator-secret",
    "token": "devtoken",
    "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}


# Variables of the same prefix that are not settings: the config path, test and bench switches, debug.
NOT_SETTINGS = ("WXSURVEY_CONFIG", "WXSURVEY_DEBUG", "WXSURVEY_TEST_", "WXSURVEY_BENCH_")


def _coerce(where: str, default: Any, value: Any) -> Any:
    """Convert value to the type of default, or raise ConfigError naming where."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(default, list):
        if isinstance(value, list):
            return value
        raise ConfigError(f"{where}: expected a list of tables, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected a string, got {value!r}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _merge_file(values: dict[str, dict[str, Any]], data: Mapping[str, Any], source: str) -> None:
    for section, table in data.items():
        if section not in DEFAULTS:
            raise ConfigError(f"{source}: unknown section [{section}]")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, value in table.items():
            if key not in DEFAULTS[section]:
                raise ConfigError(f"{source}: unknown key {section}.{key}")
            values[section][key] = _coerce(f"{source}: {section}.{key}", DEFAULTS[section][key], value)


def _merge_env(values: dict[str, dict[str, Any]], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith("WXSURVEY_") or name.startswith(NOT_SETTINGS):
            continue
        rest = name[len("WXSURVEY_") :].lower()
        section, _, key = rest.partition("_")
        if section not in DEFAULTS or key not in DEFAULTS[section]:
            raise ConfigError(f"{name}: no such setting")
        if isinstance(DEFAULTS[section][key], list):
            raise ConfigError(f"{name}: {section}.{key} can only be set in the TOML file")
        values[section][key] = _coerce(name, DEFAULTS[section][key], raw)


def dev_base_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches a dev server bound to host:port."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _dev_secrets(values: dict[str, dict[str, Any]]) -> None:
    """Fill missing dev secrets from var/dev-secrets.toml, creating it on first use."""
    var = Path(values["app"]["var_dir"])
    path = var / "dev-secrets.toml"
    stored: dict[str, Any] = _read_toml(path) if path.exists() else {}
    changed = False
    for section, key in DEV_GENERATED:
        if values[section][key]:
            continue
        name = f"{section}_{key}"
        if not stored.get(name):
            stored[name] = secrets.token_urlsafe(32)
            changed = True
        values[section][key] = stored[name]
    if changed:
        var.mkdir(parents=True, exist_ok=True)
        text = "".join(f'{k} = "{v}"\n' for k, v in stored.items())
        tmp = path.with_suffix(".tmp")
        tmp.write_text("# generated by wxsurvey in dev mode; delete to rotate\n" + text)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    for key, value in DEV_WECHAT.items():
        if not values["wechat"][key]:
            values["wechat"][key] = value


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the settings: defaults, then the TOML file, then the environment, then overrides."""
    environ = os.environ if environ is None else environ
    values = {section: dict(keys) for section, keys in DEFAULTS.items()}
    for section in values:
        for key, value in values[section].items():
            if isinstance(value, list):
                values[section][key] = list(value)
    if path is None:
        path = environ.get("WXSURVEY_CONFIG") or None
        if path is None and Path("config.toml").exists():
            path = "config.toml"
    elif not Path(path).exists():
        raise ConfigError(f"{path}: no such config file")
    if path is not None:
        if not Path(path).exists():
            raise ConfigError(f"WXSURVEY_CONFIG={path}: no such config file")
        _merge_file(values, _read_toml(Path(path)), str(path))
    _merge_env(values, environ)
    if overrides:
        _merge_file(values, overrides, "overrides")
    validate(values)
    if values["app"]["mode"] == "production":
        for section, key in PRODUCTION_SECRETS:
            if not values[section][key]:
                env = f"WXSURVEY_{section.upper()}_{key.upper()}"
                raise ConfigError(f"production mode needs {section}.{key} (or {env}); it is not set")
        if values["app"]["secret_key"] and len(values["app"]["secret_key"]) < 16:
            raise ConfigError("app.secret_key: must be at least 16 characters in production")
        if not values["app"]["base_url"].startswith("https://"):
            raise ConfigError(
                "production mode needs app.base_url (or WXSURVEY_APP_BASE_URL), the public https:// "
                f"address WeChat reaches; got {values['app']['base_url'] or 'nothing'}"
            )
    else:
        _dev_secrets(values)
        if not values["app"]["base_url"]:
            values["app"]["base_url"] = dev_base_url(values["app"]["host"], values["app"]["port"])
    return Settings(**{name: SECTIONS[name](**keys) for name, keys in values.items()})
