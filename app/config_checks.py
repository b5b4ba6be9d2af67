"""The checks of a loaded configuration (app.config calls `validate` on the merged values): each
broken key is reported as one line naming it, what it must be and what it got."""

from __future__ import annotations

import functools
from typing import Any

from app.errors import ConfigError

MODES = ("dev", "production")


def per_endpoint(spec: str, endpoint: str) -> float:
    """The value a "path=value,...,*=value" setting gives an endpoint (0 when none applies)."""
    table = _endpoint_table(spec)
    return table.get(endpoint, table.get("*", 0.0))


@functools.lru_cache(maxsize=16)
def _endpoint_table(spec: str) -> dict[str, float]:
    table = {}
    for item in spec.split(","):
        if item.strip():
            name, _, value = item.partition("=")
            table[name.strip().strip("/")] = float(value)
    return table


def validate(values: dict[str, dict[str, Any]]) -> None:
    app = values["app"]
    if app["mode"] not in MODES:
        raise ConfigError(f"app.mode: must be one of {', '.join(MODES)}, got {app['mode']!r}")
    if app["log_format"] not in ("text", "json"):
        raise ConfigError(f"app.log_format: must be text or json, got {app['log_format']!r}")
    if not 0 < app["port"] < 65536:
        raise ConfigError(f"app.port: must be 1..65535, got {app['port']}")
    if app["base_url"] and not app["base_url"].startswith(("http://", "https://")):
        raise ConfigError(f"app.base_url: must start with http:// or https://, got {app['base_url']!r}")
    app["base_url"] = app["base_url"].rstrip("/")
    from app.security.client_address import parse_trusted_proxies

    try:
        parse_trusted_proxies(app["trusted_proxies"])
    except ValueError as exc:
        raise ConfigError(f"app.trusted_proxies: {exc}") from None
    from app.clock import check_zone

    try:
        check_zone(app["timezone"])
    except ValueError as exc:
        raise ConfigError(f"app.timezone: {exc}") from None
    aes = values["wechat"]["encoding_aes_key"]
    if aes and len(aes) != 43:
        raise ConfigError(f"wechat.encoding_aes_key: must be 43 characters, got {len(aes)}")
    old = values["wechat"]["previous_encoding_aes_key"]
    if old and len(old) != 43:
        raise ConfigError(f"wechat.previous_encoding_aes_key: must be 43 characters, got {len(old)}")
    if values["wechat"]["scan_reply"] not in ("news", "text"):
        raise ConfigError(f"wechat.scan_reply: must be news or text, got {values['wechat']['scan_reply']!r}")
    seconds = values["wechat"]["scan_pass_seconds"]
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"wechat.scan_pass_seconds: must be 0 (off) to 3600, got {seconds!r}")
    for key, top in (("simulator_latency_ms", 60000.0), ("simulator_error_rate", 1.0)):
        spec = values["wechat"][key]
        try:
            ok = all(0 <= value <= top for value in _endpoint_table(spec).values())
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"wechat.{key}: expected path=number,... (0..{top:g}), got {spec!r}")
    sim_url = values["wechat"]["simulator_url"]
    if sim_url and not sim_url.startswith(("http://", "https://")):
        raise ConfigError(f"wechat.simulator_url: must start with http:// or https://, got {sim_url!r}")
    schemes = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")
    redis_url = values["redis"]["url"]
    if redis_url and not redis_url.startswith(schemes):
        raise ConfigError(f"redis.url: must start with {', '.join(schemes)}, got {redis_url!r}")
    queue_url = values["redis"]["queue_url"]
    if queue_url and not queue_url.startswith(schemes[:4]):
        raise ConfigError(f"redis.queue_url: must be a plain Redis (redis://, unix://...), got {queue_url!r}")
    if redis_url.startswith("redis+cluster://") and not queue_url:
        raise ConfigError("redis.queue_url: needed with a redis+cluster:// url (RQ runs on a plain Redis)")
    if values["redis"]["ack_replicas"] < 0:
        raise ConfigError("redis.ack_replicas: must be 0 or more")
    if values["redis"]["ack_timeout_ms"] < 1:
        raise ConfigError("redis.ack_timeout_ms: must be at least 1")
    if not 1 <= values["survey"]["intake_shards"] <= 1024:
        raise ConfigError("survey.intake_shards: must be 1..1024")
    if values["redis"]["embedded_appendfsync"] not in ("always", "everysec", "no"):
        raise ConfigError("redis.embedded_appendfsync: must be always, everysec or no")
    for key in ("min_sample", "text_max_length", "drain_batch_size"):
        if values["survey"][key] < 1:
            raise ConfigError(f"survey.{key}: must be at least 1")
    from app.cases.contact import check_keys  # late: a domain module reading these settings

    check_keys(values["cases"])
    for key in ("deadline_working_days", "contact_days", "notify_retries", "notify_backoff"):
        if values["cases"][key] < 1:
            raise ConfigError(f"cases.{key}: must be at least 1")
    if not 1 <= values["integrity"]["threshold"] <= 100:
        raise ConfigError(f"integrity.threshold: must be 1..100, got {values['integrity']['threshold']}")
    if values["limits"]["window"] < 1:
        raise ConfigError("limits.window: must be at least 1 (seconds)")
    for key in ("submissions_per_prefix", "logins_per_prefix", "api_per_token", "webhook_per_openid"):
        if values["limits"][key] < 0:
            raise ConfigError(f"limits.{key}: must be 0 (off) or more")
    for key in ("push_timeout", "push_retries", "push_backoff"):
        if values["exports"][key] < 1:
            raise ConfigError(f"exports.{key}: must be at least 1")
    from app.tally.exports import parse_schedules  # late: it needs the tally module, which needs config

    if any(s.destination for s in parse_schedules(values["exports"]["schedules"])):
        if not values["exports"]["push_secret"]:
            raise ConfigError("exports.push_secret: needed to sign pushes: a schedule has a destination")
