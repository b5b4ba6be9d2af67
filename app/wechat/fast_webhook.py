# WeChat's deliveries (POST /wechat) answered without Flask's per-request machinery: the webhook's
# hot path at campaign time, one delivery per scan. Everything else goes to the Flask view.
"""A WSGI middleware in front of the Flask app (installed by create_app).

It does what the view (app/wechat/webhook.py) does — the same Delivery through the same
`receive`, the same answers to a refused one — without a request context, session or routing.
A delivery without a Content-Length, or larger than wechat.max_body_bytes, or with a query string
that is not UTF-8, goes to the view, as does one whose handling raises anything but a refusal (the
view then runs it again: a delivery is safe to run twice — its writes are all-or-nothing, and a
second run of a committed one gets the stored reply, as WeChat's own retries do).
"""

from __future__ import annotations

import io
import logging
from datetime import date

from flask import Flask

from app.fast_paths import form_fields, respond
from app.wechat.delivery import Delivery, Rejected, receive
from handlers import HandlerContext

log = logging.getLogger(__name__)
PATH = "/wechat"


class WebhookFastPath:
    def __init__(self, app: Flask, wsgi_app) -> None:
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != PATH:
            return self.wsgi_app(environ, start_response)
        settings = self.app.config["SETTINGS"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
            args = form_fields(environ.get("QUERY_STRING", "").encode("latin-1"))  # WSGI's str of bytes
        except (ValueError, UnicodeEncodeError):
            return self.wsgi_app(environ, start_response)
        if args is None or not 0 <= length <= settings.wechat.max_body_bytes:
            return self.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # for the view, if it has to answer after all
        delivery = Delivery(
            body=body,
            signature=_first(args, "signature"),
            timestamp=_first(args, "timestamp"),
            nonce=_first(args, "nonce"),
            encrypt_type=_first(args, "encrypt_type").lower(),
            msg_signature=_first(args, "msg_signature"),
        )
        with self.app.app_context():
            database, stores = self.app.extensions["wxsurvey_db"], self.app.extensions["wxsurvey_redis"]
            routes = self.app.extensions["wxsurvey_routes"]
            ctx = HandlerContext(database.session, stores["text"], settings, date.today(), routes)
            try:
                received = receive(delivery, ctx)
            except Rejected as exc:
                self.app.logger.info("webhook refused (%s): %s", exc.status, exc.reason)
                return respond(start_response, exc.status, exc.reason, "text/plain; charset=utf-8")
            except Exception as exc:  # the view runs it again and answers as it answers any failure
                log.info("webhook: %s in the fast path; the view takes the delivery", type(exc).__name__)
                received = None
        if received is None:
            return self.wsgi_app(environ, start_response)
        return respond(start_response, 200, received.body, received.content_type)


def _first(args: dict[str, list[str]], name: str) -> str:
    values = args.get(name)
    return values[0] if values else ""
