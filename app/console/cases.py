"""Console pages of the 差评 follow-up loop: the cases in the admin's scope with their figures, one
case's answer / appeal / resend, the holiday list, and publishing a survey's public results."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app import cases as service
from app.cases.calendar import list_holidays
from app.cases.publication import set_published
from app.console.blueprint import bp
from app.console.guard import actor, require_role, scope_ids
from app.db import db
from app.errors import Conflict, Invalid
from app.jobs.cases import request_notice
from app.models import Answer, Department, Option, Question
from app.models import Response as SurveyResponse
from app.org.surveys import get_survey, list_surveys
from app.public.results import forget_results
from app.tally.files import FORMATS, render

WRITERS = ("city_admin", "scoped_admin")
BUCKETS = {
    "day": "按日",
    "week": "按周",
    "month": "按月",
    "quarter": "按季",
    "year": "按年",
}  # 分期 of the figures
FIXABLE = (Invalid, Conflict)  # flashed on the page; Forbidden and NotFound are 403/404 pages


def _chosen_survey():
    surveys = list_surveys(db.session)
    slug = request.args.get("survey") or (surveys[0].slug if surveys else None)
    chosen = next((s for s in surveys if s.slug == slug), None)
    if slug and chosen is None:
        abort(404)
    return surveys, chosen


def _grouping() -> service.Grouping:
    """Per department, or per department and period of opening (?period=BUCKET)."""
    bucket = request.args.get("period") or None
    if bucket is not None and bucket not in BUCKETS:
        abort(400)
    return service.parse_grouping(None, bucket)


@bp.get("/cases")
def cases():
    surveys, survey = _chosen_survey()
    status = request.args.get("status") or None
    if status not in (None, "open", "answered", "closed", "escalated"):
        abort(400)
    grouping = _grouping()
    allowed = scope_ids()
    rows, total = (
        service.case_figures(db.session, survey.id, department_ids=allowed, grouping=grouping)
        if survey
        else ([], None)
    )
    found = service.list_cases(db.session, department_ids=allowed, status=status,
                               survey_id=survey.id if survey else None)  # fmt: skip
    departments = {d.id: d for d in db.session.scalars(select(Department))}
    return render_template("console/cases.html", nav="cases", surveys=surveys, survey=survey, status=status,
                           figures=rows, total=total, cases=found, departments=departments,
                           labels=service.STATUS_LABELS, reratings=service.RERATING_LABELS,
                           buckets=BUCKETS, bucket=grouping.period.bucket)  # fmt: skip


@bp.get("/cases/figures.<fmt>")
def case_figures_download(fmt: str):
    if fmt not in FORMATS:
        abort(404)
    _, survey = _chosen_survey()
    if survey is None:
        abort(404)
    grouping = _grouping()
    rows, total = service.case_figures(db.session, survey.id, department_ids=scope_ids(), grouping=grouping)
    body = render(fmt, service.figures_dict(survey.slug, rows, total, grouping), grouping.columns)
    filename = f"{survey.slug}-cases.{fmt}"
    return Response(
        body, mimetype=FORMATS[fmt], headers={"Content-Disposition": f"attachment; filename={filename}"}
    )


def _rating(case) -> tuple[list[tuple[str, str]], str]:
    """The rated answers' labels and the comment, as the department must read them."""
    rows = db.session.execute(
        select(Question.title, Option.label, Answer.text)
        .join(Question, Question.id == Answer.question_id)
        .outerjoin(Option, Option.id == Answer.option_id)
        .where(Answer.response_id == case.response_id)
        .order_by(Question.position)
    ).all()
    ratings = [(title, label) for title, label, _ in rows if label]
    comment = "\n".join(text for _, _, text in rows if text)
    return ratings, comment


@bp.get("/cases/<int:case_id>")
def case_detail(case_id: int):
    case = service.get_case(db.session, case_id, scope_ids())
    ratings, comment = _rating(case)
    response = db.session.get(SurveyResponse, case.response_id)
    departments = {d.id: d for d in db.session.scalars(select(Department))}
    return render_template("console/case.html", nav="cases", case=case, ratings=ratings, comment=comment,
                           response=response, departments=departments, labels=service.STATUS_LABELS,
                           reratings=service.RERATING_LABELS, errors={}, form={})  # fmt: skip


@bp.post("/cases/<int:case_id>/answer")
def case_answer(case_id: int):
    require_role(*WRITERS)
    try:
        case = service.answer_case(
            db.session, case_id, verification=request.form.get("verification", ""),
            fix=request.form.get("fix", ""), reply=request.form.get("reply", ""), actor=actor(),
            department_ids=scope_ids(), ip=request.remote_addr,
        )  # fmt: skip
    except FIXABLE as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("console.case_detail", case_id=case_id))
    db.session.commit()
    if case.notify_status == "pending":
        request_notice(case.id)
        flash("已答复，正在通过公众号通知市民", "ok")
    else:
        flash("已答复并办结（市民未同意回访，不发送通知）", "ok")
    return redirect(url_for("console.case_detail", case_id=case_id))


@bp.post("/cases/<int:case_id>/appeal")
def case_appeal(case_id: int):
    require_role(*WRITERS)
    try:
        service.appeal(db.session, case_id, request.form.get("reason", ""), actor=actor(),
                       department_ids=scope_ids(), ip=request.remote_addr)  # fmt: skip
    except FIXABLE as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("console.case_detail", case_id=case_id))
    db.session.commit()
    flash("申诉已提交数据审核", "ok")
    return redirect(url_for("console.case_detail", case_id=case_id))


@bp.post("/cases/<int:case_id>/resend")
def case_resend(case_id: int):
    require_role(*WRITERS)
    try:
        case = service.request_resend(db.session, case_id, actor=actor(), department_ids=scope_ids())
    except FIXABLE as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("console.case_detail", case_id=case_id))
    db.session.commit()
    request_notice(case.id)
    flash("已重新发送通知", "ok")
    return redirect(url_for("console.case_detail", case_id=case_id))


@bp.route("/holidays", methods=["GET", "POST"])
def holidays():
    if request.method == "POST":
        require_role("city_admin")
        upload = request.files.get("file")
        text = upload.read().decode("utf-8-sig", errors="replace") if upload else request.form.get("text", "")
        try:
            count = service.replace_year_holidays(db.session, service.parse_holidays(text))
        except FIXABLE as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return redirect(url_for("console.holidays"))
        db.session.commit()
        flash(f"已导入 {count} 天", "ok")
        return redirect(url_for("console.holidays"))
    return render_template("console/holidays.html", nav="cases", days=list_holidays(db.session))


@bp.post("/surveys/<slug>/publish")
def survey_publish(slug: str):
    require_role("city_admin")
    publish = request.form.get("action") == "publish"
    set_published(db.session, slug, publish, actor=actor(), ip=request.remote_addr)
    db.session.commit()
    forget_results(slug)
    flash("结果已公开" if publish else "已撤回公开结果", "ok")
    return redirect(url_for("console.survey", slug=get_survey(db.session, slug).slug))
