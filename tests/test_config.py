"""Settings: defaults < TOML file < environment; clear one-line errors; production secrets."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_layers_file_then_environment(tmp_path):
    path = write(tmp_path, f'[app]\nport = 6000\nvar_dir = "{tmp_path}"\n[wechat]\ntoken = "fromfile"\n')
    settings = load_settings(
        path, environ={"WXSURVEY_WECHAT_TOKEN": "fromenv", "WXSURVEY_SURVEY_MIN_SAMPLE": "12"}
    )
    assert settings.app.port == 6000
    assert settings.wechat.token == "fromenv"
    assert settings.survey.min_sample == 12
    assert settings.app.mode == "dev"


def test_wxsurvey_config_variable_names_the_file(tmp_path):
    path = write(tmp_path, f'[app]\nport = 6001\nvar_dir = "{tmp_path}"\n')
    assert load_settings(environ={"WXSURVEY_CONFIG": str(path)}).app.port == 6001
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(environ={"WXSURVEY_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[app]\nport = 'x'\n", {}, "app.port: expected an integer"),
        ("[app]\nmode = 'staging'\n", {}, "app.mode: must be one of dev, production"),
        ("[app]\nprot = 5000\n", {}, "unknown key app.prot"),
        ("[nope]\na = 1\n", {}, "unknown section [nope]"),
        ("[app\n", {}, "not valid TOML"),
        ("", {"WXSURVEY_APP_PORT": "eighty"}, "WXSURVEY_APP_PORT: expected an integer, got 'eighty'"),
        ("", {"WXSURVEY_WECHAT_REQUIRE_WECHAT_BROWSER": "maybe"}, "expected true or false"),
        ("", {"WXSURVEY_APP_COLOUR": "red"}, "WXSURVEY_APP_COLOUR: no such setting"),
        ("", {"WXSURVEY_WECHAT_ENCODING_AES_KEY": "short"}, "must be 43 characters"),
        ("[app]\nport = 70000\n", {}, "app.port: must be 1..65535"),
        ("[app]\nbase_url = 'example.org'\n", {}, "app.base_url: must start with http"),
        ("", {"WXSURVEY_WECHAT_SCAN_PASS_SECONDS": "-1"}, "scan_pass_seconds: must be 0 (off) to 3600"),
        ("[wechat]\nscan_pass_seconds = 86400\n", {}, "wechat.scan_pass_seconds: must be 0 (off) to 3600"),
    ],
)
def test_malformed_values_name_the_key(tmp_path, text, env, message):
    path = write(tmp_path, text + '\n[survey]\nrespondent_secret = "x"\n' if "[survey]" not in text else text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"WXSURVEY_APP_VAR_DIR": str(tmp_path), **env})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("missing", "key"),
    [
        ("WXSURVEY_APP_SECRET_KEY", "app.secret_key"),
        ("WXSURVEY_SURVEY_RESPONDENT_SECRET", "survey.respondent_secret"),
        ("WXSURVEY_WECHAT_APPID", "wechat.appid"),
        ("WXSURVEY_WECHAT_SECRET", "wechat.secret"),
        ("WXSURVEY_WECHAT_TOKEN", "wechat.token"),
    ],
)
def test_production_refuses_to_start_without_a_secret(tmp_path, missing, key):
    env = {
        "WXSURVEY_APP_MODE": "production",
        "WXSURVEY_APP_VAR_DIR": str(tmp_path),
        "WXSURVEY_APP_SECRET_KEY": "s" * 32,
        "WXSURVEY_SURVEY_RESPONDENT_SECRET": "r" * 32,
        "WXSURVEY_WECHAT_APPID": "wx123",
        "WXSURVEY_WECHAT_SECRET": "sec",
        "WXSURVEY_WECHAT_TOKEN": "tok",
        "WXSURVEY_APP_BASE_URL": "https://wx.example.gov.cn",
    }
    load_settings(write(tmp_path, ""), environ=env)  # complete: starts
    del env[missing]
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""), environ=env)
    assert f"production mode needs {key}" in str(info.value)
    assert not (tmp_path / "dev-secrets.toml").exists()


def test_dev_mode_generates_secrets_once_and_keeps_them(tmp_path):
    env = {"WXSURVEY_APP_VAR_DIR": str(tmp_path / "var")}
    first = load_settings(write(tmp_path, ""), environ=env)
    second = load_settings(write(tmp_path, ""), environ=env)
    assert len(first.app.secret_key) >= 32
    assert first.app.secret_key == second.app.secret_key
    assert first.survey.respondent_secret == second.survey.respondent_secret
    assert (tmp_path / "var" / "dev-secrets.toml").stat().st_mode & 0o077 == 0


def test_example_config_documents_every_key_and_loads(tmp_path):
    from pathlib import Path

    from app.config import DEFAULTS

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    text = example.read_text()
    for section, keys in DEFAULTS.items():
        assert f"[{section}]" in text, section
        for key in keys:
            assert f"{key} =" in text or f"# {key} =" in text, f"{section}.{key} undocumented"
    load_settings(example, environ={"WXSURVEY_APP_VAR_DIR": str(tmp_path)})
