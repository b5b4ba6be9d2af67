# The questionnaire's ordinary submissions (POST /q/<survey>/<department>) answered without Flask's
# per-request machinery: the hot path of a campaign. Everything else goes to the Flask view.
"""A WSGI middleware in front of the Flask app (installed by create_app).

"Ordinary" means: no query string, a url-encoded UTF-8 body of at most MAX_BODY bytes, and a
session cookie signed as Flask signs it with the current key, within the same maximum age
(app.fast.signing.SignedReader; a cookie signed with a fallback key is left to Flask), carrying an
openid. Such a submission runs through the same service as the view (app.intake.record_response)
and is answered with the same cached thanks / already-evaluated pages (app.public.pages).

Every other request — and every submission the service refuses (validation errors, a closed
survey, a forged pair, an outage) — is handed to the Flask view with its body put back. The
service has no side effect before it refuses, so the view running it again is safe. One refusal
is answered here, as the view would: past the IP prefix's rate limit, a 429 page with Retry-After
(a flood should not cost Flask's dispatch too). Every answer carries the app's security headers.
"""

from __future__ import annotations

import io
import re

from flask import Flask, render_template

from app.db import db
from app.error_pages import render_error
from app.errors import DomainError, TooMany
from app.fast.forms import app_context, form_fields, respond
from app.fast.signing import SessionCookie
from app.intake import load_form, record_response
from app.jobs.intake import request_drain
from app.public.identity import channel_of, openid_of
from app.public.pages import outcome_page
from app.redis_store import redis_store
from app.security.client_address import client_address

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_BODY = 64 * 1024  # the questionnaire's body is ~1 KB; a larger one takes the view's limits
_PATH = re.compile(r"/q/([^/]{1,40})/([^/]{1,20})")


class SubmissionFastPath:
    def __init__(self, app: Flask, wsgi_app) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self.cookie = SessionCookie(app)

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING"):
            return self.wsgi_app(environ, start_response)
        match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or not environ.get("CONTENT_TYPE", "").startswith(FORM_TYPE):
            return self.wsgi_app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        session = self.cookie.read(environ)
        openid = openid_of(session) if session else None
        if not 0 <= length <= MAX_BODY or openid is None or session is None:
            return self.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # for the view, if it has to answer after all
        page = self._submit(environ, match.group(1), match.group(2), openid, session, body)
        if page is None:
            return self.wsgi_app(environ, start_response)
        status, html, *extra = page
        return respond(
            start_response,
            status,
            html,
            "text/html; charset=utf-8",
            ("Cache-Control", "no-store"),
            ("Vary", "Cookie"),
            *extra,
            *self.app.config["SECURITY_HEADERS"],
        )

    def _submit(self, environ, slug: str, code: str, openid: str, session: dict, body: bytes):
        """(status, html[, header]) of an accepted, resent, already-evaluated or rate-limited
        submission, or None."""
        fields = form_fields(body)
        if fields is None:
            return None
        with app_context(self.app):
            try:
                form, dept = load_form(db.session, slug, code)
                outcome = record_response(
                    db.session,
                    redis_store.client,
                    self.app.config["SETTINGS"],
                    form=form,
                    department=dept,
                    openid=openid,
                    data=fields,
                    form_token=(fields.get("form_token") or [""])[0],
                    channel=channel_of(session),
                    user_agent=environ.get("HTTP_USER_AGENT", ""),
                    remote_addr=client_address(environ, self.app.config["SETTINGS"]),
                )
            except TooMany as exc:  # a flood is answered here, at the fast path's cost
                with self.app.request_context(environ):
                    html = render_error(exc.status, exc.message)[0]
                return exc.status, html, ("Retry-After", str(exc.retry_after))
            except DomainError:  # raised before anything was stored: the view answers it
                return None
            if outcome.drain_wanted:
                request_drain(outcome.shard)

            def render(template: str, when: str) -> str:
                with self.app.request_context(environ):  # the page's layout reads the session
                    return render_template(template, form=form, department=dept, when=when)

            return outcome_page(outcome, form, dept, bool(session.get("large_text")), render)
