# The empty questionnaire (GET /q/<survey>/<department>) for a citizen who already has an identity,
# answered without Flask's per-request machinery: a campaign's second-hottest page. Everything else
# goes to the Flask view (app/public/questionnaire.py).
"""A WSGI middleware in front of the Flask app (installed by create_app).

"Ordinary" means: GET, a query string that is UTF-8 and does not ask for a text size (`text=`,
which the view keeps in the session), and a session cookie signed as Flask signs it with the current
key, within the session's maximum age (app.fast.signing.SessionCookie), carrying an openid.
For such a request the layer does what the view does, with the view's own functions: the survey
and department (app.intake.load_form), whether they take answers (refusal), whether this person
answered already (answered_before), a new form token, and the cached page with only the token
filled in (empty_page). A closed survey, an inactive department, a forged pair, an earlier
answer or an outage are all handed to the view, which reads them again and answers; nothing here
writes anything, so that is safe. Any failure of the layer itself goes to the view as well.
"""

from __future__ import annotations

import logging
import re

from flask import Flask

from app.db import db
from app.errors import DomainError
from app.fast.forms import app_context, form_fields, respond
from app.fast.signing import SessionCookie
from app.intake import issue_form_token, load_form, refusal
from app.public.identity import openid_of
from app.public.questionnaire import answered_before, empty_page

log = logging.getLogger(__name__)
_PATH = re.compile(r"/q/([^/]{1,40})/([^/]{1,20})")


class QuestionnaireFastPath:
    def __init__(self, app: Flask, wsgi_app) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self.cookie = SessionCookie(app)

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "GET":
            return self.wsgi_app(environ, start_response)
        match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or not self._plain_query(environ.get("QUERY_STRING", "")):
            return self.wsgi_app(environ, start_response)
        session = self.cookie.read(environ)
        openid = openid_of(session) if session else None
        if session is None or openid is None:
            return self.wsgi_app(environ, start_response)
        try:
            html = self._page(environ, match.group(1), match.group(2), openid, session)
        except Exception as exc:  # the view reads it all again and answers as it answers any failure
            log.info("questionnaire: %s in the fast path; the view takes the request", type(exc).__name__)
            html = None
        if html is None:
            return self.wsgi_app(environ, start_response)
        return respond(
            start_response,
            200,
            html,
            "text/html; charset=utf-8",
            ("Cache-Control", "no-store"),
            *self.app.config["SECURITY_HEADERS"],
            ("Vary", "Cookie"),  # last, as Flask adds it when it saves the session
        )

    @staticmethod
    def _plain_query(query: str) -> bool:
        """No query string, or one the view ignores (WeChat adds `from=...` to shared links)."""
        if not query:
            return True
        try:
            fields = form_fields(query.encode("latin-1"))  # WSGI's str of the raw bytes
        except UnicodeEncodeError:
            return False
        return fields is not None and "text" not in fields

    def _page(self, environ, slug: str, code: str, openid: str, session: dict) -> str | None:
        """The questionnaire as the view would answer it with 200, or None for the view to answer."""
        settings = self.app.config["SETTINGS"]
        with app_context(self.app):
            try:
                form, dept = load_form(db.session, slug, code)
            except DomainError:  # NotFound, Unavailable: the view raises it again and answers
                return None
            if refusal(form, dept) or answered_before(settings, form, dept, openid) is not None:
                return None
            token = issue_form_token(settings.app.secret_key)
            return empty_page(
                form, dept, settings, bool(session.get("large_text")), token,
                within=lambda: self.app.request_context(environ),
            )  # fmt: skip
