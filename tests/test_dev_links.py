"""Dev mode without app.base_url: every link follows the port the stack runs on (the banner, the
simulator's scan, the OAuth redirect_uri and the server-side code exchange); production must
name its https address."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from app.config import ConfigError, load_settings
from tests.public.test_oauth import WECHAT_UA
from tests.stack import Stack


def settings(tmp_path, **env: str):
    (tmp_path / "none.toml").write_text("")
    return load_settings(tmp_path / "none.toml", environ={"WXSURVEY_APP_VAR_DIR": str(tmp_path), **env})


def test_dev_base_url_follows_host_and_port(tmp_path):
    assert settings(tmp_path).app.base_url == "http://127.0.0.1:5000"
    assert settings(tmp_path, WXSURVEY_APP_PORT="5100").app.base_url == "http://127.0.0.1:5100"
    assert (
        settings(tmp_path, WXSURVEY_APP_HOST="0.0.0.0", WXSURVEY_APP_PORT="5101").app.base_url
        == "http://127.0.0.1:5101"
    )
    assert settings(tmp_path, WXSURVEY_APP_HOST="::1", WXSURVEY_APP_PORT="5102").app.base_url == (
        "http://[::1]:5102"
    )
    explicit = settings(tmp_path, WXSURVEY_APP_PORT="5100", WXSURVEY_APP_BASE_URL="https://wx.example.cn/")
    assert explicit.app.base_url == "https://wx.example.cn"


@pytest.mark.parametrize("base_url", ["", "http://wx.example.gov.cn"])
def test_production_needs_an_explicit_https_base_url(tmp_path, base_url):
    env = {
        "WXSURVEY_APP_MODE": "production",
        "WXSURVEY_APP_SECRET_KEY": "s" * 32,
        "WXSURVEY_SURVEY_RESPONDENT_SECRET": "r" * 32,
        "WXSURVEY_WECHAT_APPID": "wx123",
        "WXSURVEY_WECHAT_SECRET": "sec",
        "WXSURVEY_WECHAT_TOKEN": "tok",
        "WXSURVEY_APP_BASE_URL": base_url,
    }
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, **env)
    message = str(info.value)
    assert "\n" not in message and "production mode needs app.base_url" in message and "https://" in message


@pytest.mark.slow
@pytest.mark.parametrize("by", ["env", "flag"])
def test_links_follow_the_port_without_base_url(tmp_path, by):
    """WXSURVEY_APP_PORT=N, or `wxsurvey run --port N`: every link follows N."""
    stack = Stack(tmp_path, base_url=False)
    if by == "flag":
        stack.run_args = ("--port", str(stack.port))
        del stack.env["WXSURVEY_APP_PORT"]  # the configured port stays the default, 5000
    stack.start()
    base = f"http://127.0.0.1:{stack.port}"
    fake_wechat = f"http://127.0.0.1:{stack.env['WXSURVEY_WECHAT_SIMULATOR_PORT']}/dev/wechat"
    try:
        banner = stack.log.read_text()
        for path in ("/console/", "/q/demo-departments/D08", "/dev/phone"):
            assert base + path in banner
        assert not re.search(r":5000\b", banner)  # the default port (a free port may start with 5000)
        # The simulator posts a signed scan to the webhook at the base URL; its reply links here.
        http = requests.Session()
        http.get(base + "/dev/phone")
        http.post(base + "/dev/phone/scan", data={"scene": "s:demo-departments:D08", "mode": "safe"})
        chat = unquote(http.get(base + "/dev/phone").text)
        assert "请为「" in chat and f"{base}/q/demo-departments/D08" in chat  # the card and its link
        # OAuth: the authorize and callback addresses, and the server's own code exchange.
        phone = requests.Session()
        phone.headers["User-Agent"] = WECHAT_UA
        first = phone.get(base + "/q/demo-departments/D08", allow_redirects=False)
        authorize = first.headers["Location"]
        assert authorize.startswith(fake_wechat + "/connect/oauth2/authorize?")  # its own process
        assert parse_qs(urlsplit(authorize).query)["redirect_uri"] == [base + "/oauth/callback"]
        landed = phone.get(authorize)  # the callback answers with the questionnaire itself
        assert landed.status_code == 200 and 'name="form_token"' in landed.text
        assert landed.url.startswith(base + "/oauth/callback?")
        assert 'action="/q/demo-departments/D08"' in landed.text
    finally:
        stack.stop()
