# The questionnaire page (GET /q/<survey>/<department>) answered without Flask's per-request
# machinery: a new citizen's way to WeChat's OAuth, and the empty questionnaire once they have an
# identity. Everything else goes to the Flask view (app/public/questionnaire.py).
"""A WSGI middleware in front of the Flask app (installed by create_app).

It takes a GET whose query string is UTF-8 and does not ask for a text size (`text=`, which the
view keeps in the session), with a session cookie signed as Flask signs it with the current key
within the session's maximum age (app.fast.signing.SessionCookie), or no session cookie at all.
With the view's own functions — the survey and department (app.intake.load_form), whether they
take answers (refusal) — it answers:

- no openid yet, in WeChat's browser, a plain URL (no query string, no script root): the view's
  redirect to WeChat's OAuth (start_oauth: a new state and the way back kept in the session,
  written by Flask's own session interface);
- no openid yet, in WeChat's browser, a scan pass in the link (`p=`, app.org.scan_pass): the pass
  taken (identity_from_pass) and, when this person has not answered yet, the questionnaire with
  the session cookie Flask would write; otherwise the view is handed what the pass gave;
- an openid: when this person has not answered yet (answered_before), a new form token in the
  cached page (empty_page), as the view does.

A closed survey, an inactive department, a forged pair, an earlier answer, an outage, a browser
that is not WeChat's: all handed to the view, which reads them again and answers; nothing here is
written before that decision, so that is safe. Any failure of the layer itself goes to the view.
"""

from __future__ import annotations

import logging
import re

from flask import Flask
from flask.sessions import SecureCookieSession
from werkzeug.wrappers import Response

from app.fast.callback import PATH as CALLBACK_PATH
from app.fast.forms import app_context, as_the_view_ends, form_fields, respond
from app.fast.page import empty_questionnaire, questionnaire_for, taking_answers
from app.fast.signing import SessionCookie
from app.org import scan_pass
from app.public.identity import PASS_TAKEN_KEY, identity_from_pass, openid_of, questionnaire_path, start_oauth

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
        fields = self._query_fields(environ.get("QUERY_STRING", "")) if match is not None else None
        if match is None or fields is None:
            return self.wsgi_app(environ, start_response)
        session = self.cookie.read(environ, missing={})
        if session is None:
            return self.wsgi_app(environ, start_response)
        openid = openid_of(session)
        redirect = html = None
        try:
            if openid is None:
                token = self._pass_in(fields)
                if token:
                    with_pass = self._with_pass(environ, match.group(1), match.group(2), token, session)
                    redirect = with_pass.get_wsgi_response(environ) if with_pass is not None else None
                else:
                    to_oauth = self._to_oauth(environ, match.group(1), match.group(2), session)
                    redirect = to_oauth.get_wsgi_response(environ) if to_oauth is not None else None
            else:
                large = bool(session.get("large_text"))
                html = empty_questionnaire(self.app, environ, match.group(1), match.group(2), openid, large)
        except Exception as exc:  # the view reads it all again and answers as it answers any failure
            log.info("questionnaire: %s in the fast path; the view takes the request", type(exc).__name__)
            redirect = html = None
        if redirect is not None:
            body, status, headers = redirect
            start_response(status, headers)
            return body
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
    def _query_fields(query: str) -> dict[str, list[str]] | None:
        """The query's fields when it is none or one the view reads no differently (WeChat adds
        `from=...` to shared links; a scan pass is `p=`), else None (the view answers)."""
        if not query:
            return {}
        try:
            fields = form_fields(query.encode("latin-1"))  # WSGI's str of the raw bytes
        except UnicodeEncodeError:
            return None
        return fields if fields is not None and "text" not in fields else None

    @staticmethod
    def _pass_in(fields: dict[str, list[str]]) -> str | None:
        """The scan pass a reply's link carries (`p=`), as request.args.get would give it."""
        values = fields.get(scan_pass.PARAM)
        return values[0] if values else None

    def _with_pass(self, environ, slug: str, code: str, token: str, data: dict):
        """A scanner opening their reply's link in WeChat's browser: the pass taken (the view's
        identity_from_pass) and the questionnaire with the new session cookie, as a werkzeug
        response; None for the view (which is handed what the pass gave: it is taken once)."""
        if "MicroMessenger" not in environ.get("HTTP_USER_AGENT", ""):
            return None  # the view knows the other browsers (the simulator's phone, trials)
        settings = self.app.config["SETTINGS"]
        with app_context(self.app):
            loaded = taking_answers(slug, code)
            if loaded is None:
                return None
            form, dept = loaded
            session = SecureCookieSession(data)
            redis = self.app.extensions["wxsurvey_redis"]["text"]
            openid = identity_from_pass(session, token, slug, code, settings, redis, {})
            environ[PASS_TAKEN_KEY] = (token, openid)  # the view's, should anything below fail
            if openid is None:
                return None
            html = questionnaire_for(self.app, environ, form, dept, openid, bool(session.get("large_text")))
            if html is None:
                return None  # an earlier answer: the view's page
        response = Response(html, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return as_the_view_ends(self.app, response, session)

    def _to_oauth(self, environ, slug: str, code: str, data: dict):
        """A new citizen in WeChat's browser: the view's redirect to WeChat's OAuth (state and the
        way back kept in a new session cookie) as a werkzeug response, or None for the view."""
        if (
            "MicroMessenger" not in environ.get("HTTP_USER_AGENT", "")
            or environ.get("QUERY_STRING")
            or questionnaire_path(f"/q/{slug}/{code}", environ.get("SCRIPT_NAME", "")) is None
        ):
            return None  # the view works out the way back (request.url) and the browser's kind
        settings = self.app.config["SETTINGS"]
        with app_context(self.app):
            if taking_answers(slug, code) is None:
                return None
        session = SecureCookieSession(data)
        response = self.app.redirect(start_oauth(session, f"/q/{slug}/{code}", CALLBACK_PATH, settings))
        return as_the_view_ends(self.app, response, session)
