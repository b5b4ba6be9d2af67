# WeChat's deliveries (POST /wechat) answered without Flask's per-request machinery: the webhook's
# hot path at campaign time, one delivery per scan. Everything else goes to the Flask view.
"""A WSGI middleware in front of the Flask app (installed by create_app).

It does what the view (app/wechat/webhook.py) does — the same Delivery through the same
`answer` — without a request context, session or routing.
A delivery without a Content-Length, or larger than wechat.max_body_bytes, or with a query string
that is not UTF-8, goes to the view, as does one whose handling raises anything but a refusal (the
view then runs it again: a delivery is safe to run twice — its writes are all-or-nothing, and a
second run of a committed one gets the stored reply, as WeChat's own retries do).
"""

from __future__ import annotations

import io
import logging

from flask import Flask

from app.fast.forms import app_context, form_fields, respond
from app.wechat.delivery import Delivery
from app.wechat.webhook import answer

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
        delivery = Delivery.from_query(body, lambda name: (args.get(name) or [""])[0])
        with app_context(self.app):
            try:
                status, text, content_type = answer(self.app, delivery)
            except Exception as exc:  # the view runs it again and answers as it answers any failure
                log.info("webhook: %s in the fast path; the view takes the delivery", type(exc).__name__)
                status = 0
        if not status:
            return self.wsgi_app(environ, start_response)
        return respond(start_response, status, text, content_type, *self.app.config["SECURITY_HEADERS"])
