"""The one entry point of the API, the CLI and scheduled exports: a tally in scope, as a dict
or as rows for the file renderers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Department
from app.tally.params import DIMENSION_COLUMNS, TallyResult, parse_group_by
from app.tally.queries import tallies


def tally_dict(result: TallyResult) -> dict[str, Any]:
    """The SPEC JSON shape: {survey, period, group_by, responses, quarantined, rows}."""
    return {
        "survey": result.survey,
        "period": result.period.as_dict(),
        "group_by": list(result.group_by),
        "segment_question": result.segment_question,
        "responses": result.responses,
        "quarantined": result.quarantined,
        "rows": result.rows,
    }


def row_columns(result: TallyResult) -> list[str]:
    """Column names for CSV/XLSX: the group keys in group_by order, then count and quarantined."""
    return [name for dim in result.group_by for name in DIMENSION_COLUMNS[dim]] + ["count", "quarantined"]


# --- the one entry point of the API, the CLI and scheduled exports -------------------------------------


def department_scope(
    session: Session, department: str | None, within: set[str] | None = None
) -> set[str] | None:
    """The codes a `department=CODE` parameter covers: that department and everything under it
    (a county brings its townships), intersected with the caller's own scope `within`."""
    from app.org.departments import get_department, subtree_ids

    if not department:
        return within
    root = get_department(session, department)
    ids = subtree_ids(session, root.id)
    codes = set(session.scalars(select(Department.code).where(Department.id.in_(ids))))
    return codes if within is None else codes & within


def tally_report(
    session: Session,
    survey_slug: str,
    *,
    department: str | None = None,
    group_by: str | list[str] | None = None,
    period: str | None = None,
    since: str | datetime | None = None,
    segment: str | None = None,
    within: set[str] | None = None,
    indicators: set[str] | None = None,
) -> TallyResult:
    """Tallies from request-style parameters (strings), checked with one-line errors."""
    from app.org.surveys import get_survey

    dims = parse_group_by(group_by)
    survey = get_survey(session, survey_slug)
    codes = department_scope(session, department, within)
    if indicators and "indicator" not in dims:
        dims.append("indicator")  # pulling codes groups by them, as `option` brings `question`
    result = tallies(session, survey, group_by=dims, department_codes=codes, period=period, since=since,
                     segment=segment)  # fmt: skip
    if indicators:  # the platform pulls some indicators by code
        result.rows = [row for row in result.rows if row["indicator"] in indicators]
    return result
