"""Figures the console shows beside #5's tallies: response counts by status, per survey and scope."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import TallyMonth
from app.org.departments import list_departments, subtree_ids


def response_counts(
    session: Session, survey_ids: Collection[int], department_ids: Collection[int] | None = None
) -> dict[int, dict[str, int]]:
    """{survey id: {status: responses}} from the monthly rollup; `department_ids` limits the scope."""
    if not survey_ids:
        return {}
    query = (
        select(TallyMonth.survey_id, TallyMonth.status, func.sum(TallyMonth.count))
        .where(TallyMonth.survey_id.in_(list(survey_ids)), TallyMonth.question_id == 0)
        .group_by(TallyMonth.survey_id, TallyMonth.status)
    )
    if department_ids is not None:
        query = query.where(TallyMonth.department_id.in_(list(department_ids) or [-1]))
    counts: dict[int, dict[str, int]] = {}
    for survey_id, status, total in session.execute(query):
        counts.setdefault(survey_id, {})[status] = int(total or 0)
    return counts


def filtered_codes(
    session: Session,
    department_ids: Collection[int] | None,
    *,
    category: str | None = None,
    county_id: int | None = None,
) -> set[str] | None:
    """Department codes inside an admin's scope, one category and one county; None = no limit."""
    if department_ids is None and not category and county_id is None:
        return None
    allowed = set(department_ids) if department_ids is not None else None
    if county_id is not None:
        county = subtree_ids(session, county_id)
        allowed = county if allowed is None else allowed & county
    return {
        d.code
        for d in list_departments(session)
        if (allowed is None or d.id in allowed) and (not category or d.category == category)
    }


def question_charts(survey, result) -> list[dict]:
    """Per question, in the survey's order: every option with its count and share (zeros included)."""
    counts: dict[tuple[str, str | None], int] = {}
    for row in result.rows:
        counts[(row["question"], row.get("option"))] = row["count"]
    charts = []
    for question in survey.questions:
        options = [
            {"label": o.label, "count": counts.get((question.key, o.key), 0), "negative": o.negative}
            for o in question.options
        ]
        total = sum(o["count"] for o in options)
        for option in options:
            option["share"] = option["count"] / total if total else 0.0
        charts.append(
            {
                "key": question.key,
                "title": question.title,
                "options": options,
                "total": total,
                "text_answers": counts.get((question.key, None), 0),
            }
        )
    return charts
