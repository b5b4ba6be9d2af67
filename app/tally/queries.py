"""Categorized tallies (分类统计): counts grouped by department, category, region, question, option,
period, segment and channel, read from the pre-aggregated rows (the monthly rollup whenever the
bucket and range are month-aligned, else the daily rows) or from raw answers for a cross-tab.

Official figures count responses with status "counted"; quarantined ones are reported apart in
each row's `quarantined`; rejected ones are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, and_, case, cast, func, literal, or_, select, type_coerce
from sqlalchemy.orm import Session

from app.errors import Invalid, NotFound
from app.models import Answer, Department, Option, Question, Response, Survey, TallyMonth, TallyRow
from app.models.org import LEVEL_NAMES
from app.tally.params import (
    CITY_REGION,
    DEFAULT_BUCKET,
    DIMENSION_COLUMNS,
    OFFICIAL,
    QUARANTINED,
    Period,
    TallyResult,
    _month_end,
    parse_group_by,
    parse_period,
    parse_since,
)

# --- SQL pieces -------------------------------------------------------------------------------------


def _bucket_expr(dialect: str, day_expr, bucket: str | None):  # bucket None: the survey's span
    """A date column truncated to the bucket's first day (quarters go by month, merged later)."""
    if bucket is None or bucket == "survey":
        return literal(0)
    if bucket == "day":
        return day_expr
    if dialect == "postgresql":
        unit = {"week": "week", "month": "month", "quarter": "month", "year": "year"}[bucket]
        return cast(func.date_trunc(unit, day_expr), Date)
    modifiers = {
        "week": ("-6 days", "weekday 1"),
        "month": ("start of month",),
        "quarter": ("start of month",),
        "year": ("start of year",),
    }[bucket]
    return type_coerce(func.date(day_expr, *modifiers), Date)


def month_aligned(span: Period) -> bool:
    """Whether whole months answer this period: its bucket is month or coarser (or none) and its
    range, if any, starts on a month's first day and ends on a month's last."""
    return (
        span.bucket not in ("day", "week")
        and (span.start is None or span.start.day == 1)
        and (span.end is None or span.end == _month_end(span.end))
    )


def tally_source(span: Period):
    """The pre-aggregated table a period reads and its date column: the monthly rollup when the
    period is month-aligned (scope_filters then compare month starts with the range), else the
    daily rows."""
    if month_aligned(span):
        return TallyMonth, TallyMonth.month
    return TallyRow, TallyRow.day


def _local_day_expr(dialect: str, moment):
    """The city's calendar day of a stored UTC timestamp, in SQL."""
    if dialect == "postgresql":
        return cast(func.timezone("Asia/Shanghai", moment), Date)
    return type_coerce(func.date(moment, "+8 hours"), Date)


def _bucket_label(bucket: str | None, value: Any, survey: Survey) -> str | None:
    if bucket is None:
        return None
    if bucket == "survey":
        return f"{survey.period_start.isoformat()}..{survey.period_end.isoformat()}"
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if bucket == "day":
        return value.isoformat()
    if bucket == "week":
        iso = value.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if bucket == "month":
        return f"{value.year}-{value.month:02d}"
    if bucket == "quarter":
        return f"{value.year}-Q{(value.month - 1) // 3 + 1}"
    return str(value.year)


# --- the tally ----------------------------------------------------------------------------------------


@dataclass
class _Lookups:
    """Ids to public keys and names, loaded once per tally (a few hundred rows at most)."""

    departments: dict[int, Department]
    questions: dict[int, Question]
    options: dict[int, Option]

    @classmethod
    def load(cls, session: Session, survey: Survey) -> _Lookups:
        departments = {d.id: d for d in session.scalars(select(Department))}
        questions = {q.id: q for q in survey.questions}
        options = {o.id: o for q in survey.questions for o in q.options}
        return cls(departments, questions, options)

    def region(self, dept: Department | None) -> tuple[str | None, str | None]:
        if dept is None:
            return None, None
        if dept.level == "township" and dept.parent_id in self.departments:
            county = self.departments[dept.parent_id]
            return county.code, county.name
        if dept.level == "county":
            return dept.code, dept.name
        return CITY_REGION, LEVEL_NAMES["city"]


def _department_ids(session: Session, codes: set[str] | None) -> list[int] | None:
    if codes is None:
        return None
    return list(session.scalars(select(Department.id).where(Department.code.in_(sorted(codes)))))


def _segment_question(survey: Survey, key: str | None) -> tuple[Question | None, bool]:
    """The question used as the `segment` dimension and whether it needs the raw answers."""
    default = next((q for q in survey.questions if q.segment), None)
    if not key or (default is not None and key == default.key):
        return default, False
    question = next((q for q in survey.questions if q.key == key), None)
    if question is None:
        raise NotFound(f"segment: survey {survey.slug} has no question {key!r}", field="segment")
    if question.kind != "single":
        raise Invalid(f"segment: question {key!r} is not single-choice", field="segment")
    return question, True


def tallies(
    session: Session,
    survey: Survey,
    *,
    group_by: list[str],
    department_codes: set[str] | None = None,
    period: str | Period | None = None,
    since: datetime | str | None = None,
    segment: str | None = None,
) -> TallyResult:
    """Count the survey's responses (or, when grouped by question/option, its answers) per group.

    `department_codes` limits the scope (a scoped admin passes their subtree); `period` is parsed
    by parse_period; `since` keeps only the groups whose counts changed at or after that moment
    (their counts stay whole, not deltas); `segment` names the single-choice question used as the
    `segment` dimension (default: the survey's respondent-type question, pre-aggregated; any other
    is counted from the raw answers).
    """
    dims = parse_group_by(group_by)
    span = period if isinstance(period, Period) else parse_period(period)
    if span.bucket and "period" not in dims:
        dims.append("period")
    if "period" in dims and not span.bucket:
        span = Period(DEFAULT_BUCKET, span.start, span.end)
    if "option" in dims and "question" not in dims:
        dims.insert(dims.index("option"), "question")
    since_at = parse_since(since)
    segment_question, from_raw = _segment_question(survey, segment)
    dept_ids = _department_ids(session, department_codes)
    lookups = _Lookups.load(session, survey)

    if from_raw:
        counts, changed = _raw_counts(session, survey, dims, span, dept_ids, segment_question, since_at)
    else:
        counts, changed = _row_counts(session, survey, dims, span, dept_ids, since_at)
    totals = _response_totals(session, survey, span, dept_ids)

    group_key = _GroupKeys(dims, lookups, survey, span)
    merged: dict[tuple, list[int]] = {}
    for raw, (official, held) in counts.items():
        pair = merged.get(key := group_key(raw))
        if pair is None:
            merged[key] = [official, held]
        else:
            pair[0] += official
            pair[1] += held
    if changed is not None:
        changed_keys = {group_key(raw[:6]) for raw in changed}  # same grouping as the rows
        merged = {k: v for k, v in merged.items() if k in changed_keys}
    names = [name for dim in dims for name in DIMENSION_COLUMNS[dim]]
    rows = [
        dict(zip(names, key[0], strict=True), count=official, quarantined=held)
        for key, (official, held) in sorted(merged.items(), key=_by_sort_values)
        if official or held
    ]
    return TallyResult(
        survey=survey.slug,
        period=span,
        group_by=dims,
        responses=totals.get(OFFICIAL, 0),
        quarantined=totals.get(QUARANTINED, 0),
        rows=rows,
        segment_question=segment_question.key if segment_question else None,
    )


def _by_sort_values(item: tuple) -> tuple:
    return item[0][1]


class _GroupKeys:
    """Maps a SQL group's ids (department, bucket, channel, segment option, question, option) to its
    public key: (values in group_by order, their sort values: None last, as text), memoised per
    dimension and id so that each department, question or option is looked up once per tally."""

    def __init__(self, dims: list[str], lookups: _Lookups, survey: Survey, span: Period) -> None:
        self.lookups, self.survey, self.span = lookups, survey, span
        self.parts: list[tuple[int, Any, dict]] = [
            (_DIMENSION_ID[dim], getattr(self, f"_{dim}"), {}) for dim in dims
        ]

    def __call__(self, raw: tuple) -> tuple[tuple, tuple]:
        values: tuple = ()
        order: tuple = ()
        for index, describe, memo in self.parts:
            ident = raw[index]
            part = memo.get(ident)
            if part is None:
                found = describe(ident)
                part = memo[ident] = (found, tuple((v is None, "" if v is None else str(v)) for v in found))
            values += part[0]
            order += part[1]
        return values, order

    def _survey(self, _) -> tuple:
        return (self.survey.slug,)

    def _department(self, dept_id) -> tuple:
        dept = self.lookups.departments.get(dept_id)
        return (dept.code, dept.name) if dept else (None, None)

    def _category(self, dept_id) -> tuple:
        dept = self.lookups.departments.get(dept_id)
        return (dept.category if dept else None,)

    def _level(self, dept_id) -> tuple:
        dept = self.lookups.departments.get(dept_id)
        return (dept.level if dept else None,)

    def _region(self, dept_id) -> tuple:
        return self.lookups.region(self.lookups.departments.get(dept_id))

    def _question(self, question_id) -> tuple:
        question = self.lookups.questions.get(question_id)
        return (question.key, question.title) if question else (None, None)

    def _option(self, option_id) -> tuple:
        option = self.lookups.options.get(option_id)
        return (option.key, option.label) if option else (None, None)

    _segment = _option

    def _period(self, bucket) -> tuple:
        return (_bucket_label(self.span.bucket, bucket, self.survey),)

    def _channel(self, channel) -> tuple:
        return (channel,)


# Which of a SQL group's ids each dimension reads: (department, bucket, channel, segment, question, option).
_DIMENSION_ID = {"survey": 0, "department": 0, "category": 0, "level": 0, "region": 0, "period": 1,
                 "channel": 2, "segment": 3, "question": 4, "option": 5}  # fmt: skip


def scope_filters(span: Period, day, department_id, dept_ids: list[int] | None) -> list:
    """WHERE clauses for a date range and a set of departments."""
    where = []
    if span.start:
        where.append(day >= span.start)
    if span.end:
        where.append(day <= span.end)
    if dept_ids is not None:
        where.append(department_id.in_(dept_ids))
    return where


def _needs(dims: list[str]) -> dict[str, bool]:
    return {
        "department": bool({"department", "category", "level", "region"} & set(dims)),
        "answers": "question" in dims,
        "option": "option" in dims,
        "segment": "segment" in dims,
        "channel": "channel" in dims,
    }


# GROUP BY question, option, department, then the rest: the order of the rollup's primary key, so
# that SQLite aggregates a survey's rows in key order without sorting them first.
_GROUP_ORDER = ("k4", "k5", "k0", "k1", "k2", "k3")


def _by_status(status, count) -> list:
    """sum(count) of official and of quarantined rows, side by side (one SQL group per key)."""
    return [
        func.sum(case((status == OFFICIAL, count), else_=0)),
        func.sum(case((status == QUARANTINED, count), else_=0)),
    ]


def _row_counts(session, survey, dims, span: Period, dept_ids, since_at):
    """Group the pre-aggregated rows in SQL by the id columns the dimensions need."""
    T, day = tally_source(span)
    dialect = session.get_bind().dialect.name
    need = _needs(dims)
    zero = literal(0)
    bucket = span.bucket if "period" in dims else None
    if T is TallyMonth and bucket in ("month", "quarter"):
        bucket_column = T.month  # already a month start; quarters are merged from their months
    else:
        bucket_column = _bucket_expr(dialect, day, bucket)
    columns = [
        T.department_id if need["department"] else zero,
        bucket_column,
        T.channel if need["channel"] else literal(""),
        T.segment_option_id if need["segment"] else zero,
        T.question_id if need["answers"] else zero,
        T.option_id if need["option"] else zero,
    ]
    labelled = [c.label(f"k{i}") for i, c in enumerate(columns)]
    where = [T.survey_id == survey.id, T.status.in_((OFFICIAL, QUARANTINED))]
    where.append(T.question_id > 0 if need["answers"] else T.question_id == 0)
    where += scope_filters(span, day, T.department_id, dept_ids)
    query = select(*labelled, *_by_status(T.status, T.count)).where(*where).group_by(*_GROUP_ORDER)
    counts = {tuple(r[:6]): (int(r[6]), int(r[7])) for r in session.execute(query)}
    changed = None
    if since_at is not None:
        changed = [tuple(r) for r in session.execute(query.where(T.updated_at >= since_at))]
    return counts, changed


def _raw_counts(session, survey, dims, span: Period, dept_ids, segment_question, since_at):
    """The same grouping from responses and answers, for a cross-tab question that is not pre-aggregated.

    `since` then reads the responses' received_at (raw rows have no updated_at).
    """
    R, A = Response, Answer
    X = Answer.__table__.alias("cross_answer")
    dialect = session.get_bind().dialect.name
    need = _needs(dims)
    zero = literal(0)
    day = _local_day_expr(dialect, R.submitted_at)
    columns = [
        R.department_id if need["department"] else zero,
        _bucket_expr(dialect, day, span.bucket if "period" in dims else None),
        R.channel if need["channel"] else literal(""),
        func.coalesce(X.c.option_id, 0) if need["segment"] else zero,
        A.question_id if need["answers"] else zero,
        func.coalesce(A.option_id, 0) if need["option"] else zero,
    ]
    labelled = [c.label(f"k{i}") for i, c in enumerate(columns)]
    source = R.__table__
    if need["segment"]:
        source = source.outerjoin(X, and_(X.c.response_id == R.id, X.c.question_id == segment_question.id))
    where = [R.survey_id == survey.id, R.status.in_((OFFICIAL, QUARANTINED))]
    if need["answers"]:
        source = source.join(A.__table__, A.response_id == R.id)
        where.append(or_(A.option_id.is_not(None), and_(A.text.is_not(None), A.text != "")))
    where += scope_filters(span, day, R.department_id, dept_ids)
    query = (
        select(*labelled, *_by_status(R.status, 1)).select_from(source).where(*where).group_by(*_GROUP_ORDER)
    )
    counts = {tuple(r[:6]): (int(r[6]), int(r[7])) for r in session.execute(query)}
    changed = None
    if since_at is not None:
        changed = [tuple(r) for r in session.execute(query.where(R.received_at >= since_at))]
    return counts, changed


def _response_totals(session, survey, span: Period, dept_ids) -> dict[str, int]:
    T, day = tally_source(span)
    where = [
        T.survey_id == survey.id,
        T.question_id == 0,
        *scope_filters(span, day, T.department_id, dept_ids),
    ]
    query = select(T.status, func.sum(T.count)).where(*where).group_by(T.status)
    return {status: int(n or 0) for status, n in session.execute(query)}
