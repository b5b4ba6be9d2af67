"""The city's clock (`app.timezone`, default Asia/Shanghai): the one owner of "today" and of the
calendar day of a moment, in Python and in SQL. Nothing else calls date.today() or hard-codes an
offset: a survey's first and last day are the city's, whatever zone the host runs in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Date, cast, func, type_coerce

DEFAULT_ZONE = "Asia/Shanghai"

_zone = ZoneInfo(DEFAULT_ZONE)
_pinned: datetime | None = None


def check_zone(name: str) -> ZoneInfo:
    """The zone named `name` (IANA, e.g. Asia/Shanghai); ValueError if there is none such."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not a time zone: {name!r} (an IANA name such as Asia/Shanghai)") from None


def configure(name: str) -> None:
    """Set the city's zone (create_app does, from app.timezone)."""
    global _zone
    _zone = check_zone(name)


def zone() -> ZoneInfo:
    return _zone


def now() -> datetime:
    """This moment, timezone-aware (UTC)."""
    return _pinned if _pinned is not None else datetime.now(UTC)


def today() -> date:
    """The city's calendar day now."""
    return day_of(now())


def day_of(moment: datetime) -> date:
    """The city's calendar day of a moment (naive moments are UTC, as stored)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_zone).date()


def day_start(day: date) -> datetime:
    """The moment (UTC) the city's `day` begins."""
    return datetime(day.year, day.month, day.day, tzinfo=_zone).astimezone(UTC)


def sql_day(dialect: str, moment):
    """The city's calendar day of a stored UTC timestamp, as an SQL expression. SQLite has no
    zones: it shifts by the zone's offset now (exact for zones without daylight saving time)."""
    if dialect == "postgresql":
        return cast(func.timezone(_zone.key, moment), Date)
    offset = now().astimezone(_zone).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    return type_coerce(func.date(moment, f"{minutes:+d} minutes"), Date)


@contextmanager
def pinned(moment: datetime) -> Iterator[None]:
    """Tests: this process's clock stands at `moment` (aware) until the block ends."""
    global _pinned
    previous, _pinned = _pinned, moment.astimezone(UTC)
    try:
        yield
    finally:
        _pinned = previous
