# WeChat's OAuth callback (GET /oauth/callback) answered without Flask's per-request machinery:
# once per new citizen at campaign time. Everything but the questionnaire and the redirects goes
# to the Flask view.
"""A WSGI middleware in front of the Flask app (installed by create_app).

It takes a callback whose session cookie it can read (app.fast.signing.SessionCookie: signed with
the current key, within the session's maximum age) and whose query string is UTF-8, and answers
as the view does, with the view's own pieces:

- the browser already has an openid (a refresh of the callback): back to where it was going,
  the code never sent again;
- the state matches and the code is worth sending (callback_link_holds): the one exchange of the
  code (app.public.identity.exchange_once), the openid kept in the session (remember_identity),
  then, when the way back is a questionnaire (questionnaire_path), the empty questionnaire itself
  (app.fast.page, as the questionnaire's own fast path gives it), else a redirect back.

The response and the session cookie are werkzeug's and Flask's own objects (app.redirect, the
app's session interface saving a SecureCookieSession), so the status line, headers, cookie and
body are the view's. Whatever else the questionnaire would say (an earlier answer, a closed
survey, a text size asked for) is the view's to answer. A refused link goes to the view before
anything is sent to WeChat. Once the code has been sent, whatever happens (a used code, WeChat
down, a snapshot user, any failure here) the view answers, given the exchange's outcome in the
environ (EXCHANGED_KEY) instead of sending the single-use code a second time.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask.sessions import SecureCookieSession
from werkzeug.wrappers import Response

from app.fast.forms import as_the_view_ends, form_fields
from app.fast.page import empty_questionnaire
from app.fast.signing import SessionCookie
from app.public.identity import (
    EXCHANGED_KEY,
    RETURN_KEY,
    STATE_KEY,
    callback_link_holds,
    exchange_once,
    openid_of,
    questionnaire_path,
    remember_identity,
)

log = logging.getLogger(__name__)
PATH = "/oauth/callback"


class OAuthCallbackFastPath:
    def __init__(self, app: Flask, wsgi_app) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self.cookie = SessionCookie(app)

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("PATH_INFO") != PATH:
            return self.wsgi_app(environ, start_response)
        data = self.cookie.read(environ)
        try:
            args = form_fields(environ.get("QUERY_STRING", "").encode("latin-1"))  # WSGI's str of bytes
        except UnicodeEncodeError:
            args = None
        if data is None or args is None:
            return self.wsgi_app(environ, start_response)
        try:
            response = self._answer(environ, SecureCookieSession(data), args)
            answer = response.get_wsgi_response(environ) if response is not None else None
        except Exception as exc:  # the view answers (given the exchange, if it was made)
            log.info("oauth callback: %s in the fast path; the view takes the request", type(exc).__name__)
            answer = None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        environ.pop(EXCHANGED_KEY, None)
        body, status, headers = answer
        start_response(status, headers)
        return body

    def _answer(self, environ, session: SecureCookieSession, args: dict[str, list[str]]):
        """The view's answer as a werkzeug response, or None for the view to answer."""
        return_to = session.get(RETURN_KEY) or "/"
        if not openid_of(session):
            state, code = (args.get("state") or [""])[0], (args.get("code") or [""])[0]
            if not callback_link_holds(session.get(STATE_KEY), state, code):
                return None  # the view's kind 400, nothing sent to WeChat
            settings = self.app.config["SETTINGS"]
            try:
                identity = exchange_once(settings, self.app.extensions["wxsurvey_redis"]["text"], state, code)
            except Exception as exc:  # a used code, WeChat down...: the view answers with it
                environ[EXCHANGED_KEY] = (code, exc)
                return None
            environ[EXCHANGED_KEY] = (code, identity)  # the view's, should anything below fail
            if identity.is_snapshotuser:
                return None
            session.pop(STATE_KEY, None)
            remember_identity(session, identity, settings)
            where = questionnaire_path(return_to, environ.get("SCRIPT_NAME", ""))
            if where is not None:  # the questionnaire itself, as the view answers
                if "text" in args:
                    return None  # (the view's questionnaire would keep a text size from it)
                large = bool(session.get("large_text"))
                html = empty_questionnaire(self.app, environ, *where, identity.openid, large)
                if html is None:
                    return None  # an earlier answer, a closed survey...: the view's page
                response = Response(html, mimetype="text/html")
                response.headers["Cache-Control"] = "no-store"
                return as_the_view_ends(self.app, response, session)
        response = self.app.redirect(return_to)
        return as_the_view_ends(self.app, response, session)
