"""OAuth identity for the questionnaire pages, against the simulator's fake WeChat over real HTTP."""

from __future__ import annotations

import concurrent.futures
import http.server
import io
import logging
import threading
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import jsonify, request

from app.public.identity import begin_identity, current_channel, current_openid

WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 13; V2049A) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/116.0 Mobile Safari/537.36 MicroMessenger/8.0.47.2560(0x28002F35) NetType/WIFI"
)
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36"


def add_whoami(app):
    """A stand-in page that needs an identity, exactly as the questionnaire view asks for one."""

    @app.get("/t/whoami")
    def whoami():
        openid = current_openid()
        if openid is None:
            return begin_identity(request.url)
        return jsonify(openid=openid, channel=current_channel())


@pytest.fixture
def server(app, live_server):
    add_whoami(app)
    app.config["SETTINGS"].app.base_url = live_server.url
    return live_server


def with_args(url: str, extra: str) -> str:
    """Add query arguments to an authorize URL (before its #wechat_redirect fragment)."""
    base, _, fragment = url.partition("#")
    return f"{base}&{extra}" + (f"#{fragment}" if fragment else "")


def phone(ua=WECHAT_UA) -> requests.Session:
    http = requests.Session()
    http.headers["User-Agent"] = ua
    return http


def test_oauth_gives_openid_silently_and_refresh_does_not_reuse_code(server, redis_client):
    http = phone()
    first = http.get(server.url + "/t/whoami", allow_redirects=False)
    assert first.status_code == 302
    authorize = first.headers["Location"]
    assert authorize.startswith(server.url + "/dev/wechat/connect/oauth2/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["scope"] == ["snsapi_base"] and query["appid"] == ["wxdev0000simulator"]
    assert query["redirect_uri"] == [server.url + "/oauth/callback"]

    to_callback = http.get(authorize, allow_redirects=False)
    callback = to_callback.headers["Location"]
    assert callback.startswith(server.url + "/oauth/callback?code=")
    landed = http.get(callback)
    assert landed.status_code == 200
    me = landed.json()
    assert me["openid"].startswith("oSIM") and me["channel"] == "dev"
    assert redis_client.keys("wx:sim:code:*") == []  # the code was used up

    # A refresh of the callback must not send the (used) code again: it just goes back.
    again = http.get(callback)
    assert again.status_code == 200 and again.json() == me
    # The same browser gets the same openid from the simulator next time (its own cookie).
    fresh = phone()
    for cookie in http.cookies:
        if cookie.name != "session":
            fresh.cookies.set_cookie(cookie)
    assert fresh.get(server.url + "/t/whoami").json()["openid"] == me["openid"]
    assert phone().get(server.url + "/t/whoami").json()["openid"] != me["openid"]


def test_explicit_openid_and_snapshot_user_refused(server):
    http = phone()
    authorize = http.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    landed = http.get(with_args(authorize, "openid=oTEST_citizen_0001"))
    assert landed.json()["openid"] == "oTEST_citizen_0001"

    snap = phone()
    authorize = snap.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    refused = snap.get(with_args(authorize, "snapshot=1"))
    assert refused.status_code == 403
    assert "使用完整服务" in refused.text
    assert snap.get(server.url + "/t/whoami", allow_redirects=False).status_code == 302  # still nobody


def test_state_must_match_the_session(server):
    http = phone()
    authorize = http.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    callback = http.get(authorize, allow_redirects=False).headers["Location"]
    forged = callback.rsplit("state=", 1)[0] + "state=forged"
    refused = http.get(forged)
    assert refused.status_code == 400 and "链接已过期" in refused.text
    # another browser, with no state of its own, cannot use that code either
    assert phone().get(callback).status_code == 400


def test_a_used_code_is_refused_kindly(server):
    first = phone()
    authorize = first.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    callback = first.get(authorize, allow_redirects=False).headers["Location"]
    assert first.get(callback).status_code == 200
    code = parse_qs(urlsplit(callback).query)["code"][0]

    second = phone()
    authorize2 = second.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    state2 = parse_qs(urlsplit(authorize2).query)["state"][0]
    reused = second.get(f"{server.url}/oauth/callback?code={code}&state={state2}")
    assert reused.status_code == 400 and "授权已失效" in reused.text
    assert "重新打开问卷" in reused.text


def test_wechat_unreachable_is_a_503_page(app, server):
    app.config["SETTINGS"].wechat.api_base_url = "http://127.0.0.1:9"  # nothing listens there
    http = phone()
    authorize = http.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    failed = http.get(authorize)
    assert failed.status_code == 503 and "稍后" in failed.text


def test_outside_wechat_shows_open_in_wechat_with_its_qr(tmp_path, database_url, redis_url, redis_client):
    import zxingcpp
    from PIL import Image

    from app import create_app
    from tests.conftest import settings_for

    settings = settings_for(tmp_path, database_url, redis_url, wechat={"simulator": False})
    app = create_app(settings)
    add_whoami(app)
    client = app.test_client()
    page = client.get("/t/whoami?x=1", headers={"User-Agent": DESKTOP_UA})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "请在微信中打开" in html
    import base64
    import re

    data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(base64.b64decode(data))))
    assert [d.text for d in decoded] == ["http://wx.test/t/whoami?x=1"]
    # In WeChat's browser the same app goes to the real OAuth address.
    wechat = client.get("/t/whoami", headers={"User-Agent": WECHAT_UA})
    assert wechat.headers["Location"].startswith("https://open.weixin.qq.com/connect/oauth2/authorize?")
    app.extensions["wxsurvey_db"].engine.dispose()


def test_dev_cookie_identity_outside_wechat(app, client):
    add_whoami(app)
    first = client.get("/t/whoami?a=b", headers={"User-Agent": DESKTOP_UA})
    assert first.status_code == 302 and first.headers["Location"] == "/t/whoami?a=b"
    me = client.get("/t/whoami", headers={"User-Agent": DESKTOP_UA}).get_json()
    assert me["openid"].startswith("dev-") and me["channel"] == "dev"


def test_return_to_never_leaves_the_site(app):
    with app.test_request_context("/", headers={"User-Agent": DESKTOP_UA}):
        assert begin_identity("https://evil.example/steal?x=1").headers["Location"] == "/steal?x=1"
    with app.test_request_context("/", headers={"User-Agent": DESKTOP_UA}):
        assert begin_identity("//evil.example").headers["Location"] == "/"


def test_callback_without_a_session_is_a_kind_400(client):
    page = client.get("/oauth/callback?code=abc&state=def")
    assert page.status_code == 400 and "链接已过期" in page.get_data(as_text=True)
    assert client.get("/oauth/callback").status_code == 400


def _latin1(text: str) -> str:
    """Raw UTF-8 in a query string as a WSGI server hands it over (bytes as latin-1)."""
    return text.encode().decode("latin-1")


BAD_CALLBACKS = {
    "percent-encoded Chinese state": "code=SIMCODEabc&state=%E4%B8%AD%E6%96%87",
    "raw UTF-8 state": "code=SIMCODEabc&state=" + _latin1("中文"),
    "Chinese appended to the right state": "code=SIMCODEabc&state=the-state" + _latin1("中"),
    "percent-encoded bytes that are not UTF-8": "code=SIMCODEabc&state=%FF%FE%E4",
    "raw bytes that are not UTF-8": "code=SIMCODEabc&state=\xff\xfe",
    "a code that is not UTF-8": "code=\xff\xfe&state=the-state",
    "an emoji state": "code=SIMCODEabc&state=%F0%9F%98%80",
    "a NUL in the state": "code=SIMCODEabc&state=the-state%00",
    "missing code": "state=the-state",
    "empty code": "code=&state=the-state",
    "empty state": "code=SIMCODEabc&state=",
    "missing state": "code=SIMCODEabc",
    "overlong state": "code=SIMCODEabc&state=" + "the-state" * 2000,
    "overlong code": "code=" + "A" * 5000 + "&state=the-state",
    "nothing at all": "",
    "only separators": "&&&=&=",
}


@pytest.mark.parametrize("query", BAD_CALLBACKS.values(), ids=BAD_CALLBACKS.keys())
def test_bad_callbacks_get_the_kind_expired_page(app, client, redis_client, caplog, query):
    """Whatever arrives at the callback, a browser holding a state gets the kind 400 page, no code
    goes to WeChat and no error is logged."""
    with client.session_transaction() as held:
        held["wx_oauth_state"] = "the-state"
        held["wx_return_to"] = "/q/s/D01"
    page = client.get("/oauth/callback", environ_overrides={"QUERY_STRING": query})
    html = page.get_data(as_text=True)
    assert page.status_code == 400, html
    assert "链接已过期" in html and "请重新扫码" in html and 'href="/q/s/D01"' in html
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert redis_client.keys("wx:sim:*") == []  # the simulator's WeChat saw nothing
    with client.session_transaction() as held:
        assert "wx_oauth_state" not in held and "wx_openid" not in held  # the state is spent


def test_a_right_state_still_lets_the_citizen_in_after_the_fix(server):
    """The byte comparison accepts the state the app sent (the ordinary journey)."""
    http = phone()
    authorize = http.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    assert http.get(authorize).json()["openid"].startswith("oSIM")


def _callback_url(http: requests.Session, server) -> str:
    """A citizen's browser sent to OAuth: the callback URL WeChat sends it back with (not yet followed)."""
    authorize = http.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
    back = http.get(authorize, allow_redirects=False)
    assert back.status_code == 302 and "/oauth/callback?" in back.headers["Location"]
    return back.headers["Location"]


class Exchanges:
    """WSGI middleware on the fake WeChat's side: counts the code exchanges it is asked for."""

    def __init__(self, app) -> None:
        self.wsgi_app, self.count, self.lock = app.wsgi_app, 0, threading.Lock()
        app.wsgi_app = self

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").endswith("/sns/oauth2/access_token"):
            with self.lock:
                self.count += 1
        return self.wsgi_app(environ, start_response)


@pytest.mark.parametrize("latency_ms", [0, 300])
def test_twin_callbacks_share_one_exchange_and_both_keep_the_identity(app, server, latency_ms):
    """A double tap (or a browser sending the callback twice) carries the same cookie, state and
    code: the code goes to WeChat once, and both answers carry the identity, whichever lands last.
    With 300 ms at WeChat the twin arrives while the first waits; with none, after it has its answer."""
    app.config["SETTINGS"].wechat.simulator_latency_ms = f"sns/oauth2/access_token={latency_ms}"
    exchanges = Exchanges(app)
    http = phone()
    callback = _callback_url(http, server)
    cookies = http.cookies.get_dict()  # the state's cookie, before either answer changes it
    start = threading.Barrier(2)

    def tap():
        start.wait()
        return requests.get(
            callback, cookies=cookies, headers={"User-Agent": WECHAT_UA}, allow_redirects=False
        )

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: tap(), range(2)))
    assert [a.status_code for a in answers] == [302, 302]
    assert [a.headers["Location"] for a in answers] == ["/t/whoami"] * 2
    openids = set()
    for answer in answers:
        follow = requests.get(server.url + "/t/whoami", cookies=answer.cookies, allow_redirects=False)
        openids.add(follow.json()["openid"])
    assert len(openids) == 1 and openids.pop().startswith("oSIM")
    assert exchanges.count == 1


def test_a_head_request_does_not_spend_the_code(app, server):
    exchanges = Exchanges(app)
    http = phone()
    callback = _callback_url(http, server)
    head = http.head(callback, allow_redirects=False)
    assert head.status_code == 405 and head.headers["Allow"] == "GET"
    assert exchanges.count == 0
    assert http.get(callback).json()["openid"].startswith("oSIM")  # the code still works


class OddWeChat:
    """WSGI middleware on the fake WeChat's side: its code exchange answers with `body` (a proxy
    in front of WeChat gone wrong, or WeChat itself changing)."""

    def __init__(self, wsgi_app, body: bytes) -> None:
        self.wsgi_app, self.body = wsgi_app, body

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").endswith("/sns/oauth2/access_token"):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [self.body]
        return self.wsgi_app(environ, start_response)


ODD_ANSWERS = {
    "errcode as a list": (b'{"errcode": [40029]}', 503),
    "errcode as an object": (b'{"errcode": {"a": 1}}', 503),
    "JSON nested too deep": (b"[" * 100_000 + b"]" * 100_000, 503),
    "errcode as a string of a used code": (b'{"errcode": "40029", "errmsg": "invalid code"}', 400),
    "no openid": (b'{"access_token": "x"}', 503),
    "not JSON": (b"<html>502 Bad Gateway</html>", 503),
}


@pytest.mark.parametrize("body, status", ODD_ANSWERS.values(), ids=ODD_ANSWERS.keys())
def test_odd_answers_from_wechat_get_a_kind_page(app, server, caplog, body, status):
    app.wsgi_app = OddWeChat(app.wsgi_app, body)
    http = phone()
    page = http.get(_callback_url(http, server), allow_redirects=False)
    assert page.status_code == status
    assert ("授权已失效" if status == 400 else "网络有点忙") in page.text
    assert "Traceback" not in caplog.text


class ForwardProxy:
    """An HTTP forward proxy on loopback (GET only): what a city's network may put between the
    app and WeChat. Counts the code exchanges it forwards."""

    def __init__(self) -> None:
        self.exchanges = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if "/sns/oauth2/access_token" in self.path:
                    proxy.exchanges += 1
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(self.path) as upstream:
                    body = upstream.read()
                self.send_response(upstream.status)
                self.send_header("Content-Type", upstream.headers["Content-Type"])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_code_exchange_goes_through_the_proxy_of_the_environment(app, server, monkeypatch):
    """Like the app's other WeChat calls (requests), the exchange takes HTTP(S)_PROXY and NO_PROXY."""
    proxy = ForwardProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        http = phone()
        http.trust_env = False  # the test's own phone talks to the app directly
        authorize = http.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
        assert http.get(authorize).json()["openid"].startswith("oSIM")
        assert proxy.exchanges == 1
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # and not when told to go straight
        second = phone()
        second.trust_env = False
        authorize = second.get(server.url + "/t/whoami", allow_redirects=False).headers["Location"]
        assert second.get(authorize).json()["openid"].startswith("oSIM")
        assert proxy.exchanges == 1
    finally:
        proxy.close()
