"""The OAuth callback fast path (app/fast/callback.py): the view's redirects, cookie and all, without
Flask's dispatch; refused links go to the view before anything reaches WeChat, and after the
exchange the view answers with the layer's outcome, so a single-use code is sent once, always.
The fake WeChat is the simulator's, inside the app, over real loopback HTTP."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask.sessions import SecureCookieSession

from app.fast import callback as fast_callback
from tests.fast.test_fast_submit import dispatched
from tests.fast.test_fast_webhook import _view_client
from tests.public.test_oauth import WECHAT_UA


def citizen(app, browser, openid: str, *extra: str) -> str:
    """A browser sent to WeChat's OAuth by a page needing an identity; returns the callback's query
    string WeChat sends it back with (`extra` arguments go to the simulator: openid, snapshot)."""
    to_oauth = browser.get("/t/whoami", headers={"User-Agent": WECHAT_UA})
    assert to_oauth.status_code == 302
    authorize = to_oauth.headers["Location"].partition("#")[0] + "&" + "&".join((f"openid={openid}", *extra))
    back = requests.get(authorize, allow_redirects=False)
    assert back.status_code == 302
    return urlsplit(back.headers["Location"]).query


def app_paths(seen: list[str]) -> list[str]:
    """The requests Flask dispatched for the app itself (not the simulator's WeChat inside it)."""
    return [line for line in seen if not line.startswith("GET /dev/wechat/")]


def session_of(app, response) -> dict | None:
    cookie = response.headers.get("Set-Cookie")
    if cookie is None:
        return None
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    return app.session_interface.get_signing_serializer(app).loads(value)


def assert_same_raw(app, fast, slow, states: tuple[str, str] = ("", "")) -> None:
    """Status line, headers in order, body; the session cookie by its content and attributes (its
    timestamp may be a second apart). `states`: the OAuth states each answer drew at random (the
    layer's, the view's), compared as the same."""

    def masked(value, state: str):
        if not state:
            return value
        return value.replace(state.encode(), b"S") if isinstance(value, bytes) else value.replace(state, "S")

    assert fast.status == slow.status
    fast_headers, slow_headers = fast.headers.to_wsgi_list(), slow.headers.to_wsgi_list()
    assert [n for n, _ in fast_headers] == [n for n, _ in slow_headers]
    for (name, fast_value), (_, slow_value) in zip(fast_headers, slow_headers, strict=True):
        if name == "Set-Cookie":
            assert fast_value.split(";", 1)[1] == slow_value.split(";", 1)[1]
        else:
            assert masked(fast_value, states[0]) == masked(slow_value, states[1]), name
    fast_session, slow_session = session_of(app, fast), session_of(app, slow)
    if states[0]:
        assert (fast_session.pop("wx_oauth_state"), slow_session.pop("wx_oauth_state")) == states
    assert fast_session == slow_session
    assert masked(fast.get_data(), states[0]) == masked(slow.get_data(), states[1])


def test_a_new_citizen_is_let_in_by_the_layer_as_by_the_view(app, client, wechat):
    view = _view_client(app)
    fast_query, view_query = citizen(app, client, "oFAST_cb_0001"), citizen(app, view, "oFAST_cb_0001")
    with dispatched(app) as seen:
        fast = client.get("/oauth/callback?" + fast_query)
    slow = view.get("/oauth/callback?" + view_query)
    assert app_paths(seen) == [], "the callback went through Flask's dispatch"
    assert fast.status_code == 302 and fast.headers["Location"] == "/t/whoami"
    assert_same_raw(app, fast, slow)
    kept = session_of(app, fast)
    assert kept["wx_openid"] == "oFAST_cb_0001" and "wx_oauth_state" not in kept
    headers = dict(fast.headers)
    assert "Cookie" in headers["Vary"]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Lax" in headers["Set-Cookie"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert sorted(wechat.codes) == sorted(parse_qs(q)["code"][0] for q in (fast_query, view_query))
    assert client.get("/t/whoami").get_json()["openid"] == "oFAST_cb_0001"

    # A refresh of the callback: back where it was going, the used code never sent again.
    with dispatched(app) as seen:
        fast_again = client.get("/oauth/callback?" + fast_query)
    slow_again = view.get("/oauth/callback?" + view_query)
    assert app_paths(seen) == [] and fast_again.status_code == 302 and "Set-Cookie" not in fast_again.headers
    assert_same_raw(app, fast_again, slow_again)
    assert len(wechat.codes) == 2


@pytest.mark.parametrize(
    "spoil",
    [
        lambda q: q.replace("state=", "state=x"),
        lambda q: q.replace("state=", "state=%E4%B8%AD"),
        lambda q: q.split("&state=")[0],
        lambda q: q.replace("code=", "nocode="),
        lambda q: q.replace("code=", "code=" + "A" * 200),
    ],
    ids=["forged state", "Chinese state", "no state", "no code", "overlong code"],
)
def test_refused_links_are_the_views_and_reach_no_wechat(app, client, wechat, spoil):
    query = spoil(citizen(app, client, "oFAST_cb_0002"))
    with dispatched(app) as seen:
        refused = client.get("/oauth/callback?" + query)
    assert len(app_paths(seen)) == 1 and refused.status_code == 400
    assert "链接已过期" in refused.get_data(as_text=True)
    assert wechat.codes == []


def test_no_session_or_a_query_that_is_not_utf8_is_the_views(app, client, wechat):
    query = citizen(app, client, "oFAST_cb_0003")
    fresh = _view_client(app)
    with dispatched(app) as seen:
        no_session = app.test_client().get("/oauth/callback?" + query)
        not_utf8 = client.get("/oauth/callback", environ_overrides={"QUERY_STRING": query + "&x=\xff"})
    assert len(app_paths(seen)) == 2 and no_session.status_code == 400 and not_utf8.status_code == 400
    assert fresh.get("/oauth/callback?" + query).status_code == 400
    assert wechat.codes == []


def test_after_the_exchange_the_view_answers_with_its_outcome_never_a_second_exchange(app, client, wechat):
    settings = app.config["SETTINGS"]
    # A used code: WeChat's 40163, the kind page.
    first = citizen(app, client, "oFAST_cb_0004")
    assert client.get("/oauth/callback?" + first).status_code == 302
    second_browser = app.test_client()
    second = citizen(app, second_browser, "oFAST_cb_0005")
    used = second.replace(parse_qs(second)["code"][0], parse_qs(first)["code"][0])
    with dispatched(app) as seen:
        page = second_browser.get("/oauth/callback?" + used)
    assert len(app_paths(seen)) == 1 and page.status_code == 400
    assert "授权已失效" in page.get_data(as_text=True)
    assert wechat.codes.count(parse_qs(first)["code"][0]) == 2  # the first use, and this one only

    # WeChat busy: the kind retry page, one exchange.
    settings.wechat.simulator_error_rate = "sns/oauth2/access_token=1"
    busy_browser = app.test_client()
    busy = citizen(app, busy_browser, "oFAST_cb_0006")
    page = busy_browser.get("/oauth/callback?" + busy)
    assert page.status_code == 503 and "网络有点忙" in page.get_data(as_text=True)
    assert wechat.codes.count(parse_qs(busy)["code"][0]) == 1
    settings.wechat.simulator_error_rate = ""

    # A snapshot user: refused by the view, with the layer's exchange.
    snap_browser = app.test_client()
    snap = citizen(app, snap_browser, "oFAST_cb_0007", "snapshot=1")
    page = snap_browser.get("/oauth/callback?" + snap)
    assert page.status_code == 403 and "使用完整服务" in page.get_data(as_text=True)
    assert wechat.codes.count(parse_qs(snap)["code"][0]) == 1
    assert snap_browser.get("/t/whoami", headers={"User-Agent": WECHAT_UA}).status_code == 302  # still nobody


def test_a_failure_in_the_layer_after_the_exchange_lets_the_view_finish_it(
    app, client, wechat, monkeypatch, caplog
):
    query = citizen(app, client, "oFAST_cb_0008")
    monkeypatch.setattr(fast_callback, "SecureCookieSession", BrokenSession)
    caplog.set_level(logging.INFO)
    with dispatched(app) as seen:
        page = client.get("/oauth/callback?" + query)
    assert len(app_paths(seen)) == 1 and page.status_code == 302 and page.headers["Location"] == "/t/whoami"
    assert session_of(app, page)["wx_openid"] == "oFAST_cb_0008"
    assert wechat.codes == [parse_qs(query)["code"][0]]  # exchanged once, by the layer
    assert [r.getMessage() for r in caplog.records if r.name == "app.fast.callback"] == [
        "oauth callback: RuntimeError in the fast path; the view takes the request"
    ]
    assert not [r for r in caplog.records if r.exc_info]


class BrokenSession(SecureCookieSession):
    """A session the layer cannot finish (it fails once the openid is being kept)."""

    def __setitem__(self, key, value):
        if key == "wx_openid":
            raise RuntimeError("cannot keep the openid")
        super().__setitem__(key, value)


def test_the_request_log_names_the_route_of_the_layers_answers():
    from app.ops.logs import route_of

    assert route_of("/oauth/callback") == "/oauth/callback"
    assert route_of("/q/demo-departments/D08") == "/q/<survey_slug>/<department_code>"
