"""GET /wechat (server verification) and POST /wechat (messages and events): thin HTTP around delivery."""

from __future__ import annotations

from datetime import date

from flask import Response, current_app, request
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

from app.db import db
from app.redis_store import redis_store
from app.wechat import bp
from app.wechat.delivery import Delivery, Rejected, receive
from handlers import HandlerContext


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
    settings = current_app.config["SETTINGS"]
    limit = settings.wechat.max_body_bytes
    if (request.content_length or 0) > limit:
        return _plain("body too large", 413)
    body = request.stream.read(limit + 1)
    args = request.args
    delivery = Delivery(
        body=body,
        signature=args.get("signature", ""),
        timestamp=args.get("timestamp", ""),
        nonce=args.get("nonce", ""),
        encrypt_type=args.get("encrypt_type", "").lower(),
        msg_signature=args.get("msg_signature", ""),
    )
    routes = current_app.extensions["wxsurvey_routes"]
    ctx = HandlerContext(db.session, redis_store.client, settings, date.today(), routes)
    try:
        received = receive(delivery, ctx)
    except Rejected as exc:
        current_app.logger.info("webhook refused (%s): %s", exc.status, exc.reason)
        return _plain(exc.reason, exc.status)
    return Response(received.body, content_type=received.content_type)
