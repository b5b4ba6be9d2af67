"""Console pages for surveys: list with live counts, create from a template, edit while draft,
open and close, and a phone-frame preview of what citizens will see."""

from __future__ import annotations

import copy
from datetime import date

from flask import flash, redirect, render_template, request, url_for

from app import clock
from app.console.blueprint import bp
from app.console.guard import actor, require_role, scope_ids
from app.db import db
from app.errors import Invalid
from app.models.org import LEVEL_NAMES
from app.org import surveys as service
from app.tally.results import response_counts


def _date(name: str) -> date:
    try:
        return date.fromisoformat(request.form.get(name, ""))
    except ValueError:
        raise Invalid("请填写有效日期（YYYY-MM-DD）", field=name) from None


def _surveys_page(form=None, errors=None, status: int = 200):
    surveys = service.list_surveys(db.session)
    counts = response_counts(db.session, [s.id for s in surveys], scope_ids())
    today = clock.today()
    return render_template(
        "console/surveys.html",
        nav="surveys",
        surveys=surveys,
        counts=counts,
        templates=service.list_templates(db.session),
        level_names=LEVEL_NAMES,
        form=form or {"period_start": date(today.year, 1, 1), "period_end": date(today.year, 12, 31)},
        errors=errors or {},
    ), status


@bp.get("/surveys")
def surveys():
    return _surveys_page()


@bp.post("/surveys")
def create_survey():
    require_role("city_admin")
    form = request.form
    try:
        survey = service.create_survey(
            db.session,
            slug=form.get("slug", "").strip(),
            template=form.get("template", ""),
            title=form.get("title") or None,
            period_start=_date("period_start"),
            period_end=_date("period_end"),
            levels=form.getlist("levels"),
            actor=actor(),
        )
    except Invalid as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _surveys_page(form, exc.errors, 400)
    db.session.commit()
    flash(f"已创建调查 {survey.title}（草稿）", "ok")
    return redirect(url_for("console.survey", slug=survey.slug))


@bp.get("/surveys/<slug>")
def survey(slug: str):
    survey = service.get_survey(db.session, slug)
    counts = response_counts(db.session, [survey.id], scope_ids())
    return render_template(
        "console/survey.html",
        nav="surveys",
        survey=survey,
        count=counts.get(survey.id, {}),
        level_names=LEVEL_NAMES,
    )


@bp.post("/surveys/<slug>/<any(open, close):action>")
def survey_status(slug: str, action: str):
    require_role("city_admin")
    change = service.open_survey if action == "open" else service.close_survey
    survey = change(db.session, slug, actor=actor())
    db.session.commit()
    flash(f"调查已{'开始' if action == 'open' else '结束'}：{survey.title}", "ok")
    return redirect(url_for("console.survey", slug=slug))


def edited_snapshot(snapshot: dict, form) -> dict:
    """The survey's snapshot with the titles, option labels, required flags and removals from the form."""
    edited = copy.deepcopy(snapshot)
    questions = []
    for i, question in enumerate(edited["questions"]):
        if form.get(f"q{i}-delete"):
            continue
        question["title"] = form.get(f"q{i}-title", question["title"]).strip()
        question["required"] = bool(form.get(f"q{i}-required"))
        for j, option in enumerate(question.get("options") or []):
            option["label"] = form.get(f"q{i}-o{j}", option["label"]).strip()
        questions.append(question)
    edited["questions"] = questions
    return edited


@bp.route("/surveys/<slug>/questions", methods=["GET", "POST"])
def edit_questions(slug: str):
    require_role("city_admin")
    survey = service.get_survey(db.session, slug)
    if survey.status != "draft":
        raise Invalid("调查已开始，问题不能再修改")
    error = None
    if request.method == "POST":
        try:
            service.update_questions(
                db.session, slug, edited_snapshot(survey.snapshot, request.form), actor()
            )
        except Invalid as exc:
            db.session.rollback()
            survey = service.get_survey(db.session, slug)
            error = exc.message
        else:
            db.session.commit()
            flash("问题已保存", "ok")
            return redirect(url_for("console.survey", slug=slug))
    return render_template("console/questions.html", nav="surveys", survey=survey, error=error), (
        400 if error else 200
    )


@bp.get("/surveys/<slug>/preview")
def survey_preview(slug: str):
    survey = service.get_survey(db.session, slug)
    return render_template("console/preview.html", nav="surveys", survey=survey)
