"""GET /wechat (server verification) and POST /wechat (messages and events): thin HTTP around delivery."""

from __future__ import annotations

import time
from datetime import date

from flask import Flask, Response, current_app, request
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

from app.db import db
from app.metrics import WEBHOOK, WEBHOOK_SECONDS
from app.redis_store import redis_store
from app.wechat.blueprint import bp
from app.wechat.delivery import Delivery, Inbox, Rejected, receive


def _plain(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/plain")


@bp.get("/wechat")
def verify():
    args = request.args
    signature, timestamp, nonce = args.get("signature", ""), args.get("timestamp", ""), args.get("nonce", "")
    echostr = args.get("echostr", "")
    if not (signature and timestamp and nonce and echostr):
        return _plain("missing signature, timestamp, nonce or echostr", 400)
    try:
        check_signature(current_app.config["SETTINGS"].wechat.token, signature, timestamp, nonce)
    except InvalidSignatureException:
        return _plain("bad signature", 403)
    return _plain(echostr)


@bp.post("/wechat")
def receive_delivery():
    limit = current_app.config["SETTINGS"].wechat.max_body_bytes
    if (request.content_length or 0) > limit:
        return _plain("body too large", 413)
    delivery = Delivery.from_query(request.stream.read(limit + 1), lambda name: request.args.get(name, ""))
    status, text, content_type = answer(current_app, delivery)
    return Response(text, status=status, content_type=content_type)


def answer(app: Flask, delivery: Delivery) -> tuple[int, str, str]:
    """(status, body, content type) for a delivery: its reply, or why it is refused. In an app
    context; the view and the fast path in front of Flask (app/fast/webhook.py) share it."""
    started = time.perf_counter()
    routes = app.extensions["wxsurvey_routes"]
    ctx = Inbox(db.session, redis_store.client, app.config["SETTINGS"], date.today(), routes)
    try:
        received = receive(delivery, ctx)
    except Rejected as exc:
        app.logger.info("webhook refused (%s): %s", exc.status, exc.reason)
        WEBHOOK.labels("refused").inc()
        return exc.status, exc.reason, "text/plain; charset=utf-8"
    WEBHOOK.labels(received.kind).inc()
    WEBHOOK_SECONDS.observe(time.perf_counter() - started)
    return 200, received.body, received.content_type
