# The fake WeChat the OAuth tests of the layers talk to: the simulator inside the app, over real HTTP.
from __future__ import annotations

import threading
from urllib.parse import parse_qs

import pytest

from tests.public.test_oauth import add_whoami

EXCHANGE = "/dev/wechat/sns/oauth2/access_token"


class ExchangeLog:
    """WSGI middleware on the fake WeChat's side: the code of every exchange it is asked for."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app, self.codes, self.lock = wsgi_app, [], threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == EXCHANGE:
            with self.lock:
                self.codes.append(parse_qs(environ.get("QUERY_STRING", "")).get("code", [""])[0])
        return self.wsgi_app(environ, start_response)


@pytest.fixture
def wechat(app, live_server):
    """The simulator's WeChat on live_server, its code exchanges logged."""
    add_whoami(app)
    app.config["SETTINGS"].app.base_url = live_server.url
    log = ExchangeLog(app.wsgi_app)
    app.wsgi_app = log
    return log
