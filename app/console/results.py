"""Console results: live counts, satisfaction ranking per category with confidence intervals,
per-question charts, filters (period, category, county) and downloads of the API's data."""

from __future__ import annotations

from flask import Response, current_app, render_template, request

from app.console.blueprint import bp
from app.console.guard import check_scope, scope_ids
from app.db import db
from app.errors import Invalid
from app.models import Survey
from app.org.departments import get_department, list_departments
from app.org.surveys import get_survey, list_surveys
from app.tally.files import FORMATS, render
from app.tally.index import satisfaction_index
from app.tally.queries import tallies
from app.tally.report import row_columns, tally_dict
from app.tally.results import filtered_codes, question_charts

DOWNLOAD_FORMATS = tuple(FORMATS)


def _filters():
    """(survey, filters dict, department codes in scope) from the query string."""
    slug = request.args.get("survey")
    survey: Survey | None
    surveys = list_surveys(db.session)
    if slug:
        survey = get_survey(db.session, slug)
    else:
        current = [s for s in surveys if s.status == "open"] or surveys
        survey = get_survey(db.session, current[0].slug) if current else None
    county_code = request.args.get("county") or None
    county = check_scope(get_department(db.session, county_code)) if county_code else None
    if county is not None and county.level != "county":
        raise Invalid(f"{county.name} 不是县区", field="county")
    filters = {
        "survey": survey.slug if survey else None,
        "period": (request.args.get("period") or "").strip(),
        "category": request.args.get("category") or "",
        "county": county_code or "",
    }
    codes = filtered_codes(
        db.session, scope_ids(), category=filters["category"] or None, county_id=county.id if county else None
    )
    return surveys, survey, filters, codes


@bp.get("/results")
def results():
    surveys, survey, filters, codes = _filters()
    context = {"nav": "results", "surveys": surveys, "survey": survey, "filters": filters}
    visible = list_departments(db.session, within=_scope_root())
    context["categories"] = sorted({d.category for d in visible})
    context["counties"] = [d for d in visible if d.level == "county"]
    if survey is None:
        return render_template("console/results.html", **context)
    period = filters["period"] or None
    overview = tallies(db.session, survey, group_by=[], department_codes=codes, period=period)
    by_question = tallies(db.session, survey, group_by=["question", "option"], department_codes=codes,
                          period=period)  # fmt: skip
    min_sample = current_app.config["SETTINGS"].survey.min_sample
    ranking: dict[str, list] = {}
    for row in satisfaction_index(db.session, survey, department_codes=codes, period=period,
                                  min_sample=min_sample):  # fmt: skip
        ranking.setdefault(row.category, []).append(row)
    return render_template(
        "console/results.html",
        **context,
        overview=overview,
        charts=question_charts(survey, by_question),
        ranking=ranking,
        min_sample=min_sample,
    )


def _scope_root():
    from app.console.guard import current_admin

    return current_admin().scope_department_id


@bp.get("/results/download")
def download_results():
    _surveys, survey, filters, codes = _filters()
    if survey is None:
        raise Invalid("还没有调查")
    fmt = request.args.get("format", "csv")
    if fmt not in DOWNLOAD_FORMATS:
        raise Invalid(f"格式应为 {' / '.join(DOWNLOAD_FORMATS)}", field="format")
    group_by = [part for part in (request.args.get("group_by") or "department").split(",") if part]
    result = tallies(db.session, survey, group_by=group_by, department_codes=codes,
                     period=filters["period"] or None)  # fmt: skip
    name = f"{survey.slug}-tallies.{fmt}"
    body = render(fmt, tally_dict(result), row_columns(result))  # the same bytes as the API's
    return Response(
        body, mimetype=FORMATS[fmt], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
