"""The webhook fast path (app/fast/webhook.py): WeChat's deliveries answered exactly as the
Flask view answers them, without Flask's request dispatch; anything it cannot answer goes to the view."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask
from werkzeug.test import Client

from app.dev.wechat_server import event_xml, open_reply, seal
from app.fast import webhook as fast_webhook
from tests.fast.test_fast_submit import dispatched
from tests.wechat.test_wechat_webhook import ACCOUNT, new_openid


def _view_client(app) -> Client:
    """A client of the Flask app itself, behind no fast path."""
    return Client(lambda environ, start_response: Flask.wsgi_app(app, environ, start_response))


def _post(client, sealed, **override):
    params = {**sealed.params, **override}
    return client.post("/wechat?" + urlencode(params), data=sealed.body, content_type="text/xml")


def test_deliveries_bypass_flask_and_get_the_views_answers(app, client, demo, redis_client):
    wechat = app.config["SETTINGS"].wechat
    plain = seal(event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08"), wechat, "plaintext")
    safe = seal(event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08"), wechat, "safe")
    with dispatched(app) as seen:
        fast_plain, fast_safe = _post(client, plain), _post(client, safe)
    assert seen == [], "a delivery went through Flask's dispatch"
    assert fast_plain.status_code == fast_safe.status_code == 200
    assert (
        open_reply(fast_safe.get_data(as_text=True), wechat)["Url"]
        .partition("?p=")[0]
        .endswith("/q/demo-departments/D08")
    )
    # The same deliveries through the view are WeChat's retries: they get the stored replies.
    view = _view_client(app)
    view_plain, view_safe = _post(view, plain), _post(view, safe)
    assert view_plain.status_code == 200 and view_plain.get_data() == fast_plain.get_data()
    assert open_reply(view_safe.get_data(as_text=True), wechat) == open_reply(
        fast_safe.get_data(as_text=True), wechat
    )
    for fast, slow in ((fast_plain, view_plain), (fast_safe, view_safe)):
        assert fast.headers["Content-Type"] == slow.headers["Content-Type"]
        assert fast.headers["Content-Length"] == slow.headers["Content-Length"]
    assert "Set-Cookie" not in fast_plain.headers and "Vary" not in fast_plain.headers


def test_refusals_are_the_views(app, client, demo, redis_client):
    wechat = app.config["SETTINGS"].wechat
    sealed = seal(event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08"), wechat, "plaintext")
    view = _view_client(app)
    for override in (
        {"signature": "0" * 40},
        {"timestamp": "soon"},
        {"encrypt_type": "rot13"},
        {"nonce": ""},
    ):
        with dispatched(app) as seen:
            fast = _post(client, sealed, **override)
        slow = _post(view, sealed, **override)
        assert seen == [] and fast.status_code in (400, 403), override
        assert (fast.status, fast.get_data(), fast.headers["Content-Type"]) == (
            slow.status,
            slow.get_data(),
            slow.headers["Content-Type"],
        )
    assert not redis_client.keys("wx:msg:*")


def test_what_the_fast_path_cannot_answer_goes_to_the_view(app, client, demo, redis_client, monkeypatch):
    wechat = app.config["SETTINGS"].wechat
    sealed = seal(event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08"), wechat, "plaintext")
    query = urlencode(sealed.params) + "&x=\xff"  # not UTF-8 (WSGI's str of bytes): the view decides
    with dispatched(app) as seen:
        odd = client.post(
            "/wechat", data=sealed.body, content_type="text/xml", environ_overrides={"QUERY_STRING": query}
        )
    assert len(seen) == 1 and odd.status_code == 400  # the view: a client error, never a 500
    calls = []

    def failing_once(app, delivery):
        calls.append(delivery.nonce)
        raise RuntimeError("a failure the fast path does not know")

    monkeypatch.setattr(fast_webhook, "answer", failing_once)
    again = seal(event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08"), wechat, "plaintext")
    with dispatched(app) as seen:
        answered = _post(client, again)
    assert calls == [again.params["nonce"]] and len(seen) == 1  # the view ran it, with the real answer()
    assert answered.status_code == 200 and "/q/demo-departments/D08" in answered.get_data(as_text=True)


def test_a_query_string_that_is_not_utf8_is_a_client_error_everywhere(client, demo):
    odd = {"QUERY_STRING": "x=\xff"}
    for path in ("/q/demo-departments/D08", "/console/"):
        response = client.get(path, environ_overrides=odd)
        assert response.status_code == 400, path
        assert "UTF-8" in response.get_data(as_text=True)
    assert client.get("/api/v1/tallies", environ_overrides=odd).status_code == 401  # no token: asked first
