# The questionnaire page /q/<survey>/<department>: shows the frozen questions, takes the answers,
# and hands them to app.intake.record; thanks, already-evaluated and closed pages. No SQL here.
# Ordinary submissions are answered by app.fast.submit before Flask sees them; what it
# does not answer (errors, refusals, no identity) arrives here.
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from flask import current_app, make_response, render_template, request, session

from app.db import db
from app.errors import Conflict, Invalid
from app.intake import (
    STATE_MESSAGES,
    drain,  # noqa: F401  (registers the intake readiness check and the periodic drain)
    issue_form_token,
    load_form,
    previous_answer,
    record_response,
    refusal,
)
from app.intake.respondents import respondent_key
from app.jobs.intake import request_drain
from app.metrics import SUBMISSIONS, count_refusal
from app.org import scan_pass
from app.public.blueprint import bp
from app.public.identity import (
    begin_identity,
    current_channel,
    current_openid,
    identity_from_pass,
    in_wechat_browser,
    wechat_browser_required,
)
from app.public.pages import local_date, outcome_page, questionnaire_page
from app.redis_store import redis_store
from app.security.client_address import client_address


def _page(template: str, status: int = 200, **context):
    response = make_response(render_template(template, **context), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _outcome_page(outcome, form, dept):
    def render(template: str, when: str) -> str:
        return render_template(template, form=form, department=dept, when=when)

    status, body = outcome_page(outcome, form, dept, bool(session.get("large_text")), render)
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def answered_before(settings, form, dept, openid: str):
    """When this person answered this survey for this department, if they did (the view, and
    app.fast.questionnaire)."""
    rkey = respondent_key(settings.survey.respondent_secret, openid)
    shards = settings.survey.intake_shards
    return previous_answer(db.session, redis_store.client, form, dept, rkey, shards)


def empty_page(form, dept, settings, large: bool, token: str, root: str, within=nullcontext) -> str:
    """The empty questionnaire carrying the citizen's form token, from the cached page
    (app.public.pages). `within()` is the request context the template renders in the first time
    (the view's own; app.fast.questionnaire opens one)."""

    def render(slot: str) -> str:
        with within():
            return render_template(
                "public/questionnaire.html", token=slot, values={}, errors={}, form=form, department=dept
            )

    # What else it shows: settings, and the links' path prefix (the app mounted under one, SCRIPT_NAME)
    variant = (settings.survey.text_max_length, bool(settings.cases.contact_key), root)
    return questionnaire_page(form, dept, large, token, render, variant)


@bp.route("/q/<survey_slug>/<department_code>", methods=["GET", "POST"])
def questionnaire(survey_slug: str, department_code: str):
    settings = current_app.config["SETTINGS"]
    text_size = request.args.get("text")
    if text_size in ("large", "normal"):
        session["large_text"] = text_size == "large"
    form, dept = load_form(db.session, survey_slug, department_code)
    context: dict[str, Any] = {"form": form, "department": dept}
    state = refusal(form, dept)
    if state:
        status = 409 if request.method == "POST" else 200
        if request.method == "POST":
            SUBMISSIONS.labels("refused", "state", "false").inc()
        return _page("public/closed.html", status, message=STATE_MESSAGES[state], **context)
    openid = current_openid()
    if request.method != "POST":  # GET, and HEAD (Flask routes it to GET views), never a submission
        token = request.args.get(scan_pass.PARAM)
        if (
            openid is None
            and token
            and request.method == "GET"
            and (in_wechat_browser() or not wechat_browser_required())
        ):
            openid = identity_from_pass(
                session, token, survey_slug, department_code, settings, redis_store.client, request.environ
            )
        if openid is None:
            return begin_identity(request.url)
        when = answered_before(settings, form, dept, openid)
        if when is not None:
            return _page("public/already.html", when=local_date(when), **context)
        token = issue_form_token(settings.app.secret_key)
        large = bool(session.get("large_text"))
        response = make_response(empty_page(form, dept, settings, large, token, request.script_root))
        response.headers["Cache-Control"] = "no-store"
        return response
    if openid is None:
        message = "您的登录已失效，请重新扫码或从公众号菜单进入问卷，谢谢！"
        return _page("public/closed.html", 403, message=message, title="请重新进入", **context)
    form_token = request.form.get("form_token", "")
    try:
        outcome = record_response(
            db.session,
            redis_store.client,
            settings,
            form=form,
            department=dept,
            openid=openid,
            data=request.form,
            form_token=form_token,
            channel=current_channel(),
            user_agent=request.headers.get("User-Agent", ""),
            remote_addr=client_address(request.environ, settings),
        )
    except Invalid as exc:
        count_refusal(exc)
        if exc.field == "form_token":
            form_token = issue_form_token(settings.app.secret_key)
        values = {q.key: request.form.getlist(q.input_name) for q in form.questions}
        values["_followup"] = request.form.getlist("followup")  # the consent stays as it was ticked
        return _page(
            "public/questionnaire.html", 400, token=form_token, values=values, errors=exc.errors,
            summary=exc.message, **context,
        )  # fmt: skip
    except Conflict as exc:
        count_refusal(exc)
        return _page("public/closed.html", 409, message=exc.message, **context)
    if outcome.drain_wanted:
        request_drain(outcome.shard)
    return _outcome_page(outcome, form, dept)
