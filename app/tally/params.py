"""What a tally asks for: the grouping dimensions, the period and its buckets, parsed from the
API's, the CLI's and the schedules' words with a clear error for each bad value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.errors import Invalid

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
    bucket: str | None
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
