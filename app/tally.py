"""Categorized tallies (分类统计): counts grouped by department, category, region, question, option,
period, segment and channel, read from the pre-aggregated tally rows (or raw answers for a cross-tab).

Official figures count responses with status "counted"; quarantined ones are reported apart in
each row's `quarantined`; rejected ones are left out.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, and_, cast, func, literal, or_, select, type_coerce
from sqlalchemy.orm import Session

from app.errors import Invalid
from app.models import Answer, Department, Option, Question, Response, Survey, TallyRow
from app.models.org import LEVEL_NAMES

GROUP_DIMENSIONS = (
    "survey", "department", "category", "level", "region", "question", "option", "period", "segment",
    "channel",
)  # fmt: skip
PERIOD_BUCKETS = ("day", "week", "month", "quarter", "year", "survey")
DEFAULT_BUCKET = "month"
CITY_REGION = "CITY"  # the region of the city departments (市直部门): they belong to no county
CITY_UTC_OFFSET = timedelta(hours=8)  # Asia/Shanghai has no daylight saving time
OFFICIAL, QUARANTINED = "counted", "quarantined"

_RANGE_PART = re.compile(
    r"^(?P<year>\d{4})(?:-(?:Q(?P<quarter>[1-4])|W(?P<week>\d{2})|(?P<month>\d{2})(?:-(?P<day>\d{2}))?))?$"
)


@dataclass(frozen=True)
class Period:
    """How a tally treats time: an optional bucket to group by and an optional date range."""

    bucket: str | None = None
    start: date | None = None
    end: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }


@dataclass
class TallyResult:
    survey: str
    period: Period
    group_by: list[str]
    responses: int
    quarantined: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    segment_question: str | None = None


# --- parameters -------------------------------------------------------------------------------------


def _range_bounds(text: str) -> tuple[date, date]:
    match = _RANGE_PART.match(text)
    if not match:
        raise ValueError(text)
    year = int(match["year"])
    try:
        if match["quarter"]:
            q = int(match["quarter"])
            start = date(year, 3 * q - 2, 1)
            return start, _month_end(date(year, 3 * q, 1))
        if match["week"]:
            start = date.fromisocalendar(year, int(match["week"]), 1)
            return start, start + timedelta(days=6)
        if match["day"]:
            day = date(year, int(match["month"]), int(match["day"]))
            return day, day
        if match["month"]:
            start = date(year, int(match["month"]), 1)
            return start, _month_end(start)
    except ValueError:
        raise ValueError(text) from None
    return date(year, 1, 1), date(year, 12, 31)


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


def parse_period(text: str | None) -> Period:
    """`BUCKET`, `RANGE` or `BUCKET:RANGE`.

    BUCKET is one of day, week, month, quarter, year, survey. RANGE is a year (2024), a quarter
    (2024-Q2), a month (2024-05), an ISO week (2024-W19), a day (2024-05-03), or `A..B` between
    two of those (inclusive; either side may be left empty).
    """
    text = (text or "").strip()
    if not text:
        return Period()
    bucket, _, range_text = text.partition(":")
    if bucket not in PERIOD_BUCKETS:
        if range_text:
            raise Invalid(
                f"period: unknown bucket {bucket!r}; use one of {', '.join(PERIOD_BUCKETS)}", field="period"
            )
        bucket, range_text = None, text
    if not range_text:
        return Period(bucket=bucket)
    first, dots, last = range_text.partition("..")
    try:
        start = _range_bounds(first)[0] if first else None
        end = _range_bounds(last if dots else first)[1] if (last or not dots) else None
    except ValueError as exc:
        raise Invalid(
            f"period: {exc} is not a bucket ({', '.join(PERIOD_BUCKETS)}) nor a date range "
            "such as 2024, 2024-Q2, 2024-05, 2024-W19, 2024-05-03 or 2024-01-01..2024-06-30",
            field="period",
        ) from None
    if start and end and end < start:
        raise Invalid(f"period: {range_text} ends before it starts", field="period")
    return Period(bucket=bucket, start=start, end=end)


def parse_group_by(value: str | list[str] | None) -> list[str]:
    """Validate group_by (a comma-separated string or a list); order is kept, duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    dims: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item not in GROUP_DIMENSIONS:
            raise Invalid(
                f"group_by: unknown dimension {item!r}; use any of {', '.join(GROUP_DIMENSIONS)}",
                field="group_by",
            )
        if item not in dims:
            dims.append(item)
    return dims


def parse_since(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 moment (naive means UTC), returned in UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(
                f"since: {value!r} is not an ISO 8601 time such as 2024-05-03T08:00:00Z", field="since"
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --- SQL pieces -------------------------------------------------------------------------------------


def _bucket_expr(dialect: str, day_expr, bucket: str | None):
    """A date column truncated to the bucket's first day (quarters go by month, merged later)."""
    if bucket in (None, "survey"):
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
        raise Invalid(f"segment: survey {survey.slug} has no question {key!r}", field="segment")
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

    merged: dict[tuple, list[int]] = {}
    for (dept_id, bucket, channel, segment_id, question_id, option_id, status), n in counts.items():
        key = _group_key(dims, lookups, survey, span, dept_id, bucket, channel, segment_id, question_id,
                         option_id)  # fmt: skip
        pair = merged.setdefault(key, [0, 0])
        pair[0 if status == OFFICIAL else 1] += n
    if changed is not None:
        changed_keys = {
            _group_key(dims, lookups, survey, span, *raw[:6]) for raw in changed
        }  # same grouping as the rows
        merged = {k: v for k, v in merged.items() if k in changed_keys}
    rows = [
        {**dict(key), "count": official, "quarantined": held}
        for key, (official, held) in sorted(merged.items(), key=lambda kv: _sort_key(kv[0]))
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


def _sort_key(key: tuple) -> tuple:
    return tuple((v is None, "" if v is None else str(v)) for _, v in key)


def _group_key(dims, lookups: _Lookups, survey, span, dept_id, bucket, channel, segment_id, question_id,
               option_id) -> tuple:  # fmt: skip
    """The public keys of one group, as a tuple of (name, value) pairs in group_by order."""
    dept = lookups.departments.get(dept_id)
    items: list[tuple[str, Any]] = []
    for dim in dims:
        if dim == "survey":
            items.append(("survey", survey.slug))
        elif dim == "department":
            items += [
                ("department", dept.code if dept else None),
                ("department_name", dept.name if dept else None),
            ]
        elif dim == "category":
            items.append(("category", dept.category if dept else None))
        elif dim == "level":
            items.append(("level", dept.level if dept else None))
        elif dim == "region":
            code, name = lookups.region(dept)
            items += [("region", code), ("region_name", name)]
        elif dim == "question":
            question = lookups.questions.get(question_id)
            items += [("question", question.key if question else None),
                      ("question_title", question.title if question else None)]  # fmt: skip
        elif dim == "option":
            option = lookups.options.get(option_id)
            items += [("option", option.key if option else None),
                      ("option_label", option.label if option else None)]  # fmt: skip
        elif dim == "period":
            items.append(("period", _bucket_label(span.bucket, bucket, survey)))
        elif dim == "segment":
            option = lookups.options.get(segment_id)
            items += [("segment", option.key if option else None),
                      ("segment_label", option.label if option else None)]  # fmt: skip
        elif dim == "channel":
            items.append(("channel", channel))
    return tuple(items)


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


def _row_counts(session, survey, dims, span: Period, dept_ids, since_at):
    """Group the pre-aggregated rows in SQL by the id columns the dimensions need."""
    T = TallyRow
    dialect = session.get_bind().dialect.name
    need = _needs(dims)
    zero = literal(0)
    columns = [
        T.department_id if need["department"] else zero,
        _bucket_expr(dialect, T.day, span.bucket if "period" in dims else None),
        T.channel if need["channel"] else literal(""),
        T.segment_option_id if need["segment"] else zero,
        T.question_id if need["answers"] else zero,
        T.option_id if need["option"] else zero,
        T.status,
    ]
    labelled = [c.label(f"k{i}") for i, c in enumerate(columns)]
    where = [T.survey_id == survey.id, T.status.in_((OFFICIAL, QUARANTINED))]
    where.append(T.question_id != 0 if need["answers"] else T.question_id == 0)
    where += scope_filters(span, T.day, T.department_id, dept_ids)
    group = [f"k{i}" for i in range(len(columns))]
    query = select(*labelled, func.sum(T.count)).where(*where).group_by(*group)
    counts = Counter({tuple(r[:-1]): int(r[-1]) for r in session.execute(query)})
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
        R.status,
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
    group = [f"k{i}" for i in range(len(columns))]
    query = select(*labelled, func.count()).select_from(source).where(*where).group_by(*group)
    counts = Counter({tuple(r[:-1]): int(r[-1]) for r in session.execute(query)})
    changed = None
    if since_at is not None:
        changed = [tuple(r) for r in session.execute(query.where(R.received_at >= since_at))]
    return counts, changed


def _response_totals(session, survey, span: Period, dept_ids) -> dict[str, int]:
    T = TallyRow
    where = [
        T.survey_id == survey.id,
        T.question_id == 0,
        *scope_filters(span, T.day, T.department_id, dept_ids),
    ]
    query = select(T.status, func.sum(T.count)).where(*where).group_by(T.status)
    return {status: int(n or 0) for status, n in session.execute(query)}


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


DIMENSION_COLUMNS = {
    "survey": ("survey",),
    "department": ("department", "department_name"),
    "category": ("category",),
    "level": ("level",),
    "region": ("region", "region_name"),
    "question": ("question", "question_title"),
    "option": ("option", "option_label"),
    "period": ("period",),
    "segment": ("segment", "segment_label"),
    "channel": ("channel",),
}


def row_columns(result: TallyResult) -> list[str]:
    """Column names for CSV/XLSX: the group keys in group_by order, then count and quarantined."""
    return [name for dim in result.group_by for name in DIMENSION_COLUMNS[dim]] + ["count", "quarantined"]


# --- verification -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    key: tuple  # a TallyKey
    stored: int
    recounted: int

    def describe(self) -> str:
        survey_id, dept_id, day, channel, status, segment, question, option = self.key
        return (
            f"survey={survey_id} department={dept_id} day={day} channel={channel} status={status} "
            f"segment={segment} question={question} option={option}: "
            f"stored {self.stored}, recounted {self.recounted}"
        )


def recount(session: Session, survey: Survey) -> Counter:
    """Every tally row of a survey recomputed from its raw responses and answers."""
    from app.tally_rows import response_tally_keys

    segment = next((q.id for q in survey.questions if q.segment), None)
    query = (
        select(
            Response.id,
            Response.department_id,
            Response.submitted_at,
            Response.channel,
            Response.status,
            Answer.question_id,
            Answer.option_id,
            Answer.text,
        )  # fmt: skip
        .select_from(Response)
        .outerjoin(Answer, Answer.response_id == Response.id)
        .where(Response.survey_id == survey.id)
        .order_by(Response.id)
    )
    counts: Counter = Counter()
    current, head, answers = None, None, []

    def flush():
        if head is not None:
            dept_id, submitted_at, channel, status = head
            if submitted_at.tzinfo is None:  # SQLite hands back the stored UTC time without its zone
                submitted_at = submitted_at.replace(tzinfo=UTC)
            counts.update(
                response_tally_keys(
                    survey_id=survey.id,
                    department_id=dept_id,
                    submitted_at=submitted_at,
                    channel=channel,
                    status=status,
                    answers=answers,
                    segment_question_id=segment,
                )  # fmt: skip
            )

    for rid, dept_id, submitted_at, channel, status, question_id, option_id, text in session.execute(
        query.execution_options(yield_per=10_000)
    ):
        if rid != current:
            flush()
            current, head, answers = rid, (dept_id, submitted_at, channel, status), []
        if question_id is not None:
            answers.append((question_id, option_id, bool(text)))
    flush()
    return counts


def verify_tallies(session: Session, survey: Survey) -> list[Difference]:
    """Compare the stored tally rows of a survey with a recount from the raw answers."""
    from app.tally_rows import KEY_COLUMNS

    expected = recount(session, survey)
    stored: dict[tuple, int] = {}
    columns = [getattr(TallyRow, c) for c in KEY_COLUMNS]
    for row in session.execute(select(*columns, TallyRow.count).where(TallyRow.survey_id == survey.id)):
        key = tuple(row[:-1])
        if isinstance(key[2], datetime):
            key = (*key[:2], key[2].date(), *key[3:])
        stored[key] = stored.get(key, 0) + int(row[-1])
    differences = [
        Difference(key, stored.get(key, 0), expected.get(key, 0))
        for key in set(stored) | set(expected)
        if stored.get(key, 0) != expected.get(key, 0)
    ]
    return sorted(differences, key=lambda d: tuple(str(part) for part in d.key))


# --- the one entry point of the API, the CLI and scheduled exports -------------------------------------


def department_scope(
    session: Session, department: str | None, within: set[str] | None = None
) -> set[str] | None:
    """The codes a `department=CODE` parameter covers: that department and everything under it
    (a county brings its townships), intersected with the caller's own scope `within`."""
    from app.departments import get_department, subtree_ids

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
) -> TallyResult:
    """Tallies from request-style parameters (strings), checked with one-line errors."""
    from app.surveys import get_survey

    dims = parse_group_by(group_by)
    survey = get_survey(session, survey_slug)
    codes = department_scope(session, department, within)
    return tallies(session, survey, group_by=dims, department_codes=codes, period=period, since=since,
                   segment=segment)  # fmt: skip
