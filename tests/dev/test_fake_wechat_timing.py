"""The simulator behaves like WeChat: a server process of its own (gunicorn, as `wxsurvey run`
starts it) that the app's OAuth goes through, its latency and rare failures per endpoint, and
the app's code exchanges reusing one keep-alive connection."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app.config import ConfigError, per_endpoint
from app.public.wechat_oauth import exchange_oauth_code, oauth_authorize_url
from tests.public.test_oauth import add_whoami, phone


def test_oauth_goes_through_the_simulator_of_its_own_with_wechat_latency(app, live_server, sim):
    http = phone()
    authorize = http.get(live_server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    assert authorize.startswith(sim + "/connect/oauth2/authorize?")
    callback = http.get(authorize, allow_redirects=False).headers["Location"]
    started = time.monotonic()
    me = http.get(callback).json()
    assert me["openid"].startswith("oSIM") and me["channel"] == "dev"
    assert time.monotonic() - started >= 0.080  # the code exchange took WeChat's 80 ms at least


def test_code_exchanges_reuse_one_keep_alive_connection(app, live_server, sim, caplog):
    """A thread's code exchanges go over one connection to WeChat, not a handshake each."""
    settings = app.config["SETTINGS"]
    authorize = oauth_authorize_url(settings, live_server.url + "/oauth/callback", "s").partition("#")[0]
    codes = []
    for n in range(3):
        to_callback = requests.get(f"{authorize}&openid=oKEEP{n:08d}", allow_redirects=False)
        codes.append(parse_qs(urlsplit(to_callback.headers["Location"]).query)["code"][0])
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        for n, code in enumerate(codes):
            assert exchange_oauth_code(settings, code).openid == f"oKEEP{n:08d}"
    opened = [r for r in caplog.records if "Starting new HTTP connection" in r.getMessage()]
    assert len(opened) <= 1, [r.getMessage() for r in opened]


def test_a_busy_wechat_gives_a_kind_retry_page_and_the_retry_gets_through(app, live_server):
    add_whoami(app)
    settings = app.config["SETTINGS"]
    settings.app.base_url = live_server.url  # the simulator inside the app: its settings are ours
    settings.wechat.simulator_error_rate = "sns/oauth2/access_token=1"
    http = phone()
    failed = http.get(live_server.url + "/t/whoami")
    assert failed.status_code == 503 and "网络有点忙" in failed.text and "/t/whoami" in failed.text
    settings.wechat.simulator_error_rate = "sns/oauth2/access_token=0,*=1"  # only the exchange recovers
    again = http.get(live_server.url + "/t/whoami")
    assert again.status_code == 200 and again.json()["openid"].startswith("oSIM")


def test_per_endpoint_settings_and_their_validation(tmp_path, database_url, redis_url):
    from tests.conftest import settings_for

    assert per_endpoint("sns/oauth2/access_token=80", "sns/oauth2/access_token") == 80
    assert per_endpoint("sns/oauth2/access_token=80", "cgi-bin/token") == 0
    assert per_endpoint("/cgi-bin/token/=5, *=0.5", "cgi-bin/token") == 5
    assert per_endpoint("cgi-bin/token=5,*=0.5", "anything") == 0.5
    for bad in ("fast", "x=-1", "x=abc"):
        with pytest.raises(ConfigError, match="wechat.simulator_latency_ms"):
            settings_for(tmp_path, database_url, redis_url, wechat={"simulator_latency_ms": bad})
    with pytest.raises(ConfigError, match="wechat.simulator_error_rate"):
        settings_for(tmp_path, database_url, redis_url, wechat={"simulator_error_rate": "*=2"})
