"""The satisfaction index (满意度指数) per department: mean score on 100 points, a 95% confidence
interval, an "insufficient sample" mark, and a ranking within each category where overlapping
intervals are shown as ties rather than an order the data cannot support.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Survey
from app.org.surveys import survey_departments
from app.tally.params import OFFICIAL, Period, parse_period
from app.tally.queries import scope_filters, tally_source

Z95 = 1.959964  # two-sided 95% quantile of the normal distribution
DEFAULT_MIN_SAMPLE = 30


@dataclass
class IndexRow:
    department: str
    department_name: str
    category: str
    level: str
    responses: int
    answers: int
    index: float | None
    ci_low: float | None
    ci_high: float | None
    insufficient: bool
    rank: int | None = None  # best position the data supports: 1 + departments clearly ahead
    rank_low: int | None = None  # worst position: departments not clearly behind (itself included)
    rank_label: str = ""  # "3", or "2-5" when tied with others
    tied_with: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def satisfaction_index(
    session: Session,
    survey: Survey,
    *,
    department_codes: set[str] | None = None,
    min_sample: int = DEFAULT_MIN_SAMPLE,
    period: str | Period | None = None,
) -> list[IndexRow]:
    """One row per department the survey evaluates (within `department_codes` when given).

    The index is the mean score of every counted answer to a scored question (option scores come
    from the template, 0..100). The interval is index ± 1.96·s/√n with s the standard deviation of
    those answers and n the number of responses: since a response's mean over its answers varies
    no more than the answers do, this errs on the wide (cautious) side.
    """
    span = period if isinstance(period, Period) else parse_period(period)
    scores = {o.id: o.score for q in survey.questions if q.scored for o in q.options if o.score is not None}
    departments = survey_departments(session, survey, active_only=False)
    if department_codes is not None:
        departments = [d for d in departments if d.code in department_codes]
    wanted = {d.id for d in departments}

    T, day = tally_source(span)  # the monthly rollup unless the period needs days
    where = [T.survey_id == survey.id, T.status == OFFICIAL, *scope_filters(span, day, None, None)]
    query = select(T.department_id, T.question_id, T.option_id, func.sum(T.count)).where(
        *where, (T.question_id == 0) | T.option_id.in_(list(scores) or [0])
    )
    query = query.group_by(T.department_id, T.question_id, T.option_id)
    responses: dict[int, int] = {}
    moments: dict[int, list[float]] = {}  # department -> [n, sum, sum of squares]
    counted = cast(list[tuple[int, int, int, int | None]], session.execute(query).all())
    for dept_id, question_id, option_id, count in counted:
        if dept_id not in wanted:
            continue
        count = int(count or 0)
        if question_id == 0:
            responses[dept_id] = responses.get(dept_id, 0) + count
            continue
        score = scores[option_id]
        m = moments.setdefault(dept_id, [0, 0.0, 0.0])
        m[0] += count
        m[1] += score * count
        m[2] += score * score * count

    rows = []
    for dept in departments:
        if not dept.active and dept.id not in responses:
            continue  # an inactive department with no data is not part of this survey any more
        n = responses.get(dept.id, 0)
        answers, total, squares = moments.get(dept.id, [0, 0.0, 0.0])
        index = ci_low = ci_high = None
        if answers:
            index = total / answers
            variance = max(squares / answers - index * index, 0.0)
            half = Z95 * math.sqrt(variance / n) if n else 100.0
            ci_low, ci_high = max(index - half, 0.0), min(index + half, 100.0)
            index, ci_low, ci_high = round(index, 2), round(ci_low, 2), round(ci_high, 2)
        rows.append(
            IndexRow(
                department=dept.code,
                department_name=dept.name,
                category=dept.category,
                level=dept.level,
                responses=n,
                answers=int(answers),
                index=index,
                ci_low=ci_low,
                ci_high=ci_high,
                insufficient=n < min_sample or index is None,
            )
        )
    rank_within_categories(rows)
    return rows


def rank_within_categories(rows: list[IndexRow]) -> None:
    """Rank each category's departments with enough sample; overlapping intervals tie.

    A department's rank is 1 + the departments whose interval lies wholly above its own; its
    rank_low counts those not wholly below. Equal rank and rank_low means a clear place.
    """
    by_category: dict[str, list[IndexRow]] = {}
    for row in rows:
        if row.insufficient:
            row.rank_label = "样本不足"
        else:
            by_category.setdefault(row.category, []).append(row)

    def bounds(row: IndexRow) -> tuple[float, float]:
        assert row.ci_low is not None and row.ci_high is not None, "ranked rows have an interval"
        return row.ci_low, row.ci_high

    for group in by_category.values():
        for row in group:
            low, high = bounds(row)
            ahead = sum(1 for other in group if other is not row and bounds(other)[0] > high)
            behind = sum(1 for other in group if other is not row and bounds(other)[1] < low)
            row.rank = ahead + 1
            row.rank_low = len(group) - behind
            row.tied_with = sorted(
                other.department
                for other in group
                if other is not row and bounds(other)[0] <= high and bounds(other)[1] >= low
            )
            row.rank_label = str(row.rank) if row.rank == row.rank_low else f"{row.rank}-{row.rank_low}"
    rows.sort(
        key=lambda r: (
            r.category,
            r.insufficient,
            -(r.index if r.index is not None else -1),
            r.department,
        )
    )


def index_dict(survey: Survey, rows: list[IndexRow], min_sample: int) -> dict[str, Any]:
    """The JSON shape of GET /api/v1/index."""
    return {"survey": survey.slug, "min_sample": min_sample, "rows": [r.as_dict() for r in rows]}
