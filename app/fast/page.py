# The empty questionnaire as the fast paths answer it: the questionnaire's own GET
# (app/fast/questionnaire.py) and WeChat's OAuth callback coming back to one (app/fast/callback.py).
"""With the view's own functions (app.public.questionnaire): the survey and department, whether they
take answers, whether this person answered before, a new form token in the cached page. None
whenever the view would answer anything else (a forged pair, a closed survey, an inactive
department, an earlier answer): the caller then hands the request to the view."""

from __future__ import annotations

from flask import Flask

from app.db import db
from app.errors import DomainError
from app.fast.forms import app_context
from app.intake import issue_form_token, load_form, refusal
from app.public.questionnaire import answered_before, empty_page


def taking_answers(slug: str, code: str):
    """The survey's form and the department when they take answers now, else None (the view
    answers: a forged pair, a closed survey, an inactive department). In an app context."""
    try:
        form, dept = load_form(db.session, slug, code)
    except DomainError:
        return None
    return None if refusal(form, dept) else (form, dept)


def empty_questionnaire(app: Flask, environ, slug: str, code: str, openid: str, large: bool) -> str | None:
    """The questionnaire's page as the view answers it with 200 for this openid, or None."""
    with app_context(app):
        loaded = taking_answers(slug, code)
        if loaded is None:
            return None
        form, dept = loaded
        return questionnaire_for(app, environ, form, dept, openid, large)


def questionnaire_for(app: Flask, environ, form, dept, openid: str, large: bool) -> str | None:
    """A form that takes answers, for this openid: its page with a new token, or None when this
    person answered it before (the view's "already" page). In an app context."""
    settings = app.config["SETTINGS"]
    if answered_before(settings, form, dept, openid) is not None:
        return None
    token = issue_form_token(settings.app.secret_key)
    return empty_page(
        form, dept, settings, large, token, environ.get("SCRIPT_NAME", "").rstrip("/"),
        within=lambda: app.request_context(environ),
    )  # fmt: skip
