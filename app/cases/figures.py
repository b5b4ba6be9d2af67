# Follow-up figures of a survey per department, per period of the case's opening (a tally's period
# bucket, in the city's calendar), or both: cases opened, answered on time, overdue, escalated,
# re-rating satisfaction, median days to answer. A date range narrows the cases by their opening day.
from __future__ import annotations

import statistics
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.errors import Invalid
from app.models import Department, FollowupCase, Survey
from app.tally.params import DEFAULT_BUCKET, Period, bucket_label, parse_period

DIMENSIONS = ("department", "period")  # what case figures can be grouped by
DIMENSION_COLUMNS = {
    "department": ("department", "department_name", "category", "level"),
    "period": ("period",),
}
FIGURE_COLUMNS = ("opened", "answered", "answered_on_time", "overdue", "escalated", "rerated",
                  "rerating_satisfied", "rerating_satisfaction", "median_days")  # fmt: skip
COLUMNS = DIMENSION_COLUMNS["department"] + FIGURE_COLUMNS  # the default grouping's columns


@dataclass(frozen=True)
class Grouping:
    """How figures are grouped: dimensions in row-key order, and the period's bucket and range."""

    dims: tuple[str, ...] = ("department",)
    period: Period = field(default_factory=Period)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(name for dim in self.dims for name in DIMENSION_COLUMNS[dim]) + FIGURE_COLUMNS


def parse_grouping(group_by: str | Collection[str] | None = None, period: str | None = None) -> Grouping:
    """`group_by` (department, period or both, comma-separated; default department) and `period`
    (BUCKET, RANGE or BUCKET:RANGE, as tallies take it). A bucket brings the period dimension;
    the period dimension without a bucket goes by month, as tallies do."""
    items = group_by.split(",") if isinstance(group_by, str) else list(group_by or [])
    dims: list[str] = []
    for item in (i.strip() for i in items):
        if item and item not in DIMENSIONS:
            raise Invalid(
                f"group_by: unknown dimension {item!r} for cases; use department, period or both",
                field="group_by",
            )
        if item and item not in dims:
            dims.append(item)
    span = parse_period(period)
    dims = dims or ["department"]
    if span.bucket and "period" not in dims:
        dims.append("period")
    if "period" in dims and not span.bucket:
        span = Period(DEFAULT_BUCKET, span.start, span.end)
    return Grouping(tuple(dims), span)


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
    period: str | None = None  # the bucket's label (2024-05, 2024-W19, ...) when grouped by period

    def as_dict(self, columns: Collection[str] | None = None) -> dict[str, Any]:
        """All figures (with `period` when grouped by it), or only `columns`."""
        found = asdict(self)
        if columns is not None:
            return {name: found[name] for name in columns}
        if self.period is None:
            del found["period"]
        return found


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC: read it as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _bounds(since: date | None, until: date | None):
    low = clock.day_start(since) if since else None
    high = clock.day_start(until + timedelta(days=1)) if until else None
    return low, high


def _narrowest(grouping: Grouping, since: date | None, until: date | None) -> tuple[date | None, date | None]:
    """The opening days both the period's range and since/until allow."""
    lows = [d for d in (since, grouping.period.start) if d is not None]
    highs = [d for d in (until, grouping.period.end) if d is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def case_figures(
    session: Session,
    survey_id: int,
    *,
    department_ids: Collection[int] | None = None,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
    grouping: Grouping | None = None,
) -> tuple[list[CaseFigures], CaseFigures]:
    """One row per group with at least one case (a department's own cases, wherever escalated;
    a period is the city's calendar bucket of the opening day), and the total over all of them."""
    grouping = grouping or Grouping()
    now = _aware(now) if now is not None else clock.now()
    query = select(FollowupCase).where(FollowupCase.survey_id == survey_id)
    if department_ids is not None:
        query = query.where(FollowupCase.department_id.in_(list(department_ids) or [-1]))
    low, high = _bounds(*_narrowest(grouping, since, until))
    if low is not None:
        query = query.where(FollowupCase.opened_at >= low)
    if high is not None:
        query = query.where(FollowupCase.opened_at < high)
    cases = list(session.scalars(query))
    departments = {d.id: d for d in session.scalars(select(Department))}
    bucket = grouping.period.bucket if "period" in grouping.dims else None
    survey = session.get(Survey, survey_id) if bucket == "survey" else None
    total = CaseFigures("", "合计", "", "")
    rows: dict[tuple, CaseFigures] = {}
    days: dict[tuple, list[float]] = {}
    for case in cases:
        opened = _aware(case.opened_at)
        label = bucket_label(bucket, clock.day_of(opened), survey) if bucket else None
        dept = departments[case.department_id] if "department" in grouping.dims else None
        key = (dept.id if dept else None, label)
        row = rows.get(key)
        if row is None:
            names = (dept.code, dept.name, dept.category, dept.level) if dept else ("", "", "", "")
            row = rows[key] = CaseFigures(*names, period=label)
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
            spent = (answered - opened).total_seconds() / 86400
            days.setdefault(key, []).append(spent)
            days.setdefault(("total",), []).append(spent)
    for key, row in [*rows.items(), (("total",), total)]:
        if row.rerated:
            row.rerating_satisfaction = round(100 * row.rerating_satisfied / row.rerated, 1)
        if days.get(key):
            row.median_days = round(statistics.median(days[key]), 1)
    sort_keys = {"department": lambda r: (r.category, r.department), "period": lambda r: r.period or ""}
    ordered = sorted(rows.values(), key=lambda r: tuple(sort_keys[dim](r) for dim in grouping.dims))
    return ordered, total


def figures_dict(
    survey_slug: str, rows: list[CaseFigures], total: CaseFigures, grouping: Grouping | None = None
) -> dict[str, Any]:
    """The JSON shape of `wxsurvey cases figures`, `wxsurvey tallies --dataset cases`, the exports
    and GET /api/v1/cases: each row holds its group's keys and the figures."""
    grouping = grouping or Grouping()
    return {
        "survey": survey_slug,
        "group_by": list(grouping.dims),
        "period": grouping.period.as_dict(),
        "rows": [r.as_dict(grouping.columns) for r in rows],
        "total": total.as_dict(),
    }
