# Follow-up figures per department of a survey (the survey is the period; a date range narrows it):
# cases opened, answered on time, overdue, escalated, re-rating satisfaction, median days to answer.
from __future__ import annotations

import statistics
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.models import Department, FollowupCase

COLUMNS = ("department", "department_name", "category", "level", "opened", "answered", "answered_on_time",
           "overdue", "escalated", "rerated", "rerating_satisfied", "rerating_satisfaction",
           "median_days")  # fmt: skip


@dataclass
class CaseFigures:
    department: str
    department_name: str
    category: str
    level: str
    opened: int = 0
    answered: int = 0
    answered_on_time: int = 0
    overdue: int = 0
    escalated: int = 0
    rerated: int = 0
    rerating_satisfied: int = 0  # 满意 + 基本满意
    rerating_satisfaction: float | None = None  # percent of re-ratings that are 满意 or 基本满意
    median_days: float | None = None  # calendar days from opening to answer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC: read it as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _bounds(since: date | None, until: date | None):
    low = clock.day_start(since) if since else None
    high = clock.day_start(until + timedelta(days=1)) if until else None
    return low, high


def case_figures(
    session: Session,
    survey_id: int,
    *,
    department_ids: Collection[int] | None = None,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
) -> tuple[list[CaseFigures], CaseFigures]:
    """Per department with at least one case (their own cases, wherever escalated), and the total."""
    now = _aware(now) if now is not None else clock.now()
    query = select(FollowupCase).where(FollowupCase.survey_id == survey_id)
    if department_ids is not None:
        query = query.where(FollowupCase.department_id.in_(list(department_ids) or [-1]))
    low, high = _bounds(since, until)
    if low is not None:
        query = query.where(FollowupCase.opened_at >= low)
    if high is not None:
        query = query.where(FollowupCase.opened_at < high)
    cases = list(session.scalars(query))
    departments = {d.id: d for d in session.scalars(select(Department))}
    total = CaseFigures("", "合计", "", "")
    rows: dict[int, CaseFigures] = {}
    days: dict[int, list[float]] = {}
    for case in cases:
        dept = departments[case.department_id]
        row = rows.get(dept.id)
        if row is None:
            row = rows[dept.id] = CaseFigures(dept.code, dept.name, dept.category, dept.level)
        due = _aware(case.due_at)
        answered = _aware(case.answered_at) if case.answered_at is not None else None
        for target in (row, total):
            target.opened += 1
            target.escalated += case.escalation_level > 0
            if answered is not None:
                target.answered += 1
                target.answered_on_time += answered <= due
                target.overdue += answered > due
            else:
                target.overdue += now > due
            if case.rerating:
                target.rerated += 1
                target.rerating_satisfied += case.rerating in ("satisfied", "basic")
        if answered is not None:
            spent = (answered - _aware(case.opened_at)).total_seconds() / 86400
            days.setdefault(dept.id, []).append(spent)
            days.setdefault(0, []).append(spent)
    for key, row in [*rows.items(), (0, total)]:
        if row.rerated:
            row.rerating_satisfaction = round(100 * row.rerating_satisfied / row.rerated, 1)
        if days.get(key):
            row.median_days = round(statistics.median(days[key]), 1)
    ordered = sorted(rows.values(), key=lambda r: (r.category, r.department))
    return ordered, total


def figures_dict(survey_slug: str, rows: list[CaseFigures], total: CaseFigures) -> dict[str, Any]:
    """The JSON shape of `wxsurvey cases figures` and GET /api/v1/cases."""
    return {"survey": survey_slug, "rows": [r.as_dict() for r in rows], "total": total.as_dict()}
