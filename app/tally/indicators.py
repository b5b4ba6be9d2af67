"""The index per indicator: for each department and each indicator code a survey's questions carry
(a matrix's rows each carry their own), the mean score on 100 points with its 95% interval, and for
a 0-10 scale its own summary: the mean on 10 with its interval and the net score (share of 9-10
minus share of 0-6, in percentage points). Read from the same pre-aggregated rows as the index.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Invalid
from app.models import Question, Survey
from app.org.surveys import survey_departments
from app.tally.index import DEFAULT_MIN_SAMPLE, Z95
from app.tally.params import OFFICIAL, Period, parse_period
from app.tally.queries import scope_filters, tally_source
from survey_templates.schema import INDICATOR_RE

PROMOTERS, DETRACTORS_MAX = 9, 6

INDICATOR_COLUMNS = [
    "department", "department_name", "category", "level", "indicator", "question", "question_title",
    "kind", "answers", "index", "ci_low", "ci_high", "mean", "mean_ci_low", "mean_ci_high", "net_score",
    "insufficient",
]  # fmt: skip


@dataclass
class IndicatorRow:
    department: str
    department_name: str
    category: str
    level: str
    indicator: str
    question: str
    question_title: str
    kind: str  # "single" (a matrix row too) or "scale"
    answers: int
    index: float | None = None  # scored questions: mean score 0..100
    ci_low: float | None = None
    ci_high: float | None = None
    mean: float | None = None  # scale questions: mean on 0..10
    mean_ci_low: float | None = None
    mean_ci_high: float | None = None
    net_score: float | None = None  # scale questions: % of 9-10 minus % of 0-6
    insufficient: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_indicators(value: str | None) -> set[str] | None:
    """`indicator=B01,B02`: the codes asked for, or None for all; Invalid for a malformed code."""
    if not value:
        return None
    codes = value.split(",")
    bad = next((c for c in codes if not INDICATOR_RE.fullmatch(c)), None)
    if bad is not None:
        raise Invalid(
            f"indicator: {bad!r} is not an indicator code (letters, digits, _ . -)", field="indicator"
        )
    return set(codes)


def indexed_questions(survey: Survey, codes: set[str] | None = None) -> list[Question]:
    """The questions with an indicator that have an index: scored ones and 0-10 scales (only those
    with one of `codes` when given; a code the survey does not use just matches nothing, so that the
    platform can ask every survey for the same codes)."""
    found = [q for q in survey.questions if q.indicator and (q.scored or q.kind == "scale")]
    return found if codes is None else [q for q in found if q.indicator in codes]


def indicator_index(
    session: Session,
    survey: Survey,
    *,
    department_codes: set[str] | None = None,
    indicators: set[str] | None = None,
    min_sample: int = DEFAULT_MIN_SAMPLE,
    period: str | Period | None = None,
) -> list[IndicatorRow]:
    """One row per department and indexed question, in org-chart then question order.

    `insufficient` marks fewer than `min_sample` answers to that question. The intervals are
    mean ± 1.96·s/√n over the question's answers (s their standard deviation).
    """
    span = period if isinstance(period, Period) else parse_period(period)
    questions = indexed_questions(survey, indicators)
    departments = survey_departments(session, survey, active_only=False)
    if department_codes is not None:
        departments = [d for d in departments if d.code in department_codes]
    wanted = {d.id for d in departments}
    option_of = {o.id: o for q in questions for o in q.options}
    counts: dict[tuple[int, int], dict[int, int]] = {}  # (department, question) -> option -> n
    if questions:
        T, day = tally_source(span)
        query = (
            select(T.department_id, T.question_id, T.option_id, func.sum(T.count))
            .where(T.survey_id == survey.id, T.status == OFFICIAL, T.option_id.in_(list(option_of)))
            .where(*scope_filters(span, day, None, None))
            .group_by(T.department_id, T.question_id, T.option_id)
        )
        found = cast(Iterable[tuple[int, int, int, int | None]], session.execute(query))
        for dept_id, question_id, option_id, n in found:
            if dept_id in wanted:
                counts.setdefault((dept_id, question_id), {})[option_id] = int(n or 0)
    rows = []
    for dept in departments:
        for q in questions:
            got = counts.get((dept.id, q.id), {})
            if not dept.active and not got:
                continue
            row = IndicatorRow(dept.code, dept.name, dept.category, dept.level, q.indicator or "", q.key,
                               q.title, q.kind, sum(got.values()))  # fmt: skip
            if q.scored:
                scores = [(option_of[oid].score or 0, n) for oid, n in got.items()]
                row.index, row.ci_low, row.ci_high = _mean_interval(scores, 100.0)
            if q.kind == "scale":
                points = [(int(option_of[oid].key[1:]), n) for oid, n in got.items()]
                row.mean, row.mean_ci_low, row.mean_ci_high = _mean_interval(points, 10.0)
                row.net_score = net_score(points)
            row.insufficient = row.answers < min_sample
            rows.append(row)
    return rows


def _mean_interval(values: Sequence[tuple[float, int]], top: float) -> tuple[float | None, ...]:
    """(mean, low, high) of weighted values clipped to 0..top, rounded to 2 places; Nones when empty."""
    n = sum(c for _, c in values)
    if not n:
        return None, None, None
    mean = sum(v * c for v, c in values) / n
    variance = max(sum(v * v * c for v, c in values) / n - mean * mean, 0.0)
    half = Z95 * math.sqrt(variance / n)
    return round(mean, 2), round(max(mean - half, 0.0), 2), round(min(mean + half, top), 2)


def net_score(points: list[tuple[int, int]]) -> float | None:
    """Share of 9-10 minus share of 0-6, in percentage points (-100..100); None without answers."""
    n = sum(c for _, c in points)
    if not n:
        return None
    promoters = sum(c for v, c in points if v >= PROMOTERS)
    detractors = sum(c for v, c in points if v <= DETRACTORS_MAX)
    return round(100.0 * (promoters - detractors) / n, 1)


def indicator_dict(survey: Survey, rows: list[IndicatorRow], min_sample: int) -> dict[str, Any]:
    """The JSON shape of GET /api/v1/index?group_by=indicator."""
    return {"survey": survey.slug, "group_by": "indicator", "min_sample": min_sample,
            "rows": [r.as_dict() for r in rows]}  # fmt: skip
