# What the WSGI fast paths in front of Flask share (app/fast/submit.py for submissions,
# app/fast/webhook.py for WeChat deliveries, the questionnaire and the OAuth callback): url-encoded
# fields as werkzeug reads them, a response written straight to WSGI, one finished as a view's is.
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from urllib.parse import unquote_plus

from flask import Flask, current_app, has_app_context
from werkzeug.http import HTTP_STATUS_CODES


def app_context(app: Flask) -> AbstractContextManager:
    """The app context a request of Flask's would run in: the one already pushed for this app, if
    any (a test's or a command's, whose SQL session must outlive the request), else a new one."""
    if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
        return nullcontext()
    return app.app_context()


def as_the_view_ends(app: Flask, response, session):
    """A response a view would give, finished as Flask finishes it: the session marked as read
    (Vary: Cookie), the security headers (the app's after_request), then the session saved by the
    app's own session interface; the headers in the order the view's response has them."""
    session.accessed = True
    for name, value in app.config["SECURITY_HEADERS"]:
        response.headers.setdefault(name, value)
    app.session_interface.save_session(app, session, response)
    return response


def form_fields(data: bytes) -> dict[str, list[str]] | None:
    """A url-encoded body or query string as werkzeug decodes it (name -> values, blanks kept), or
    None when it is not UTF-8. Only the pieces that are percent- or plus-encoded go through unquote."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    fields: dict[str, list[str]] = {}
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name, errors="werkzeug.url_quote")
        if "%" in value or "+" in value:
            value = unquote_plus(value, errors="werkzeug.url_quote")
        values = fields.get(name)
        if values is None:
            fields[name] = [value]
        else:
            values.append(value)
    return fields


def respond(
    start_response, status: int, body: str, content_type: str, *headers: tuple[str, str]
) -> list[bytes]:
    """The status line Flask would send (werkzeug's upper-case reason), the body and its length."""
    data = body.encode()
    start_response(
        f"{status} {HTTP_STATUS_CODES[status].upper()}",
        [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers],
    )
    return [data]
