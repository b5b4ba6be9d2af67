# Deadlines in working days: weekends and the holidays the admin uploads (with 调休 working
# weekends), counted on the city's clock.
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app import clock
from app.errors import Invalid
from app.models import Holiday

KINDS = {"holiday": "holiday", "假日": "holiday", "休": "holiday", "workday": "workday", "补班": "workday",
         "班": "workday"}  # fmt: skip
MAX_ROWS = 1000


@dataclass(frozen=True)
class WorkCalendar:
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()  # weekend days that are working days

    def is_working(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return day.weekday() < 5 or day in self.workdays

    def due_after(self, start: datetime, working_days: int) -> datetime:
        """The end (24:00 city time) of the working_days-th working day after start's day."""
        start = start if start.tzinfo else start.replace(tzinfo=UTC)  # SQLite's naive UTC
        day, left = clock.day_of(start), working_days
        while left > 0:
            day += timedelta(days=1)
            if self.is_working(day):
                left -= 1
        return clock.day_start(day + timedelta(days=1))


def load_calendar(session: Session) -> WorkCalendar:
    rows = session.execute(select(Holiday.day, Holiday.kind)).all()
    return WorkCalendar(
        frozenset(d for d, k in rows if k == "holiday"), frozenset(d for d, k in rows if k == "workday")
    )


def parse_holidays(text: str) -> list[tuple[date, str, str]]:
    """CSV lines `date[,kind[,name]]` (kind holiday/假日 or workday/补班); Invalid names the line."""
    rows: list[tuple[date, str, str]] = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        fields = [f.strip() for f in fields]
        if not fields or not fields[0] or fields[0].startswith("#") or fields[0] in ("date", "日期"):
            continue
        try:
            day = date.fromisoformat(fields[0])
        except ValueError:
            raise Invalid(f"第 {number} 行：日期 {fields[0]!r} 应写成 2027-01-01", field="file") from None
        kind = KINDS.get(fields[1] if len(fields) > 1 and fields[1] else "holiday")
        if kind is None:
            raise Invalid(f"第 {number} 行：类型应为 holiday/假日 或 workday/补班", field="file")
        rows.append((day, kind, (fields[2] if len(fields) > 2 else "")[:40]))
        if len(rows) > MAX_ROWS:
            raise Invalid(f"一次最多导入 {MAX_ROWS} 天", field="file")
    if not rows:
        raise Invalid("文件中没有日期", field="file")
    return rows


def replace_year_holidays(session: Session, rows: list[tuple[date, str, str]]) -> int:
    """Store the uploaded days, replacing what was stored for the same years (an upload is a year's list)."""
    years = {d.year for d, _, _ in rows}
    for year in years:
        session.execute(
            delete(Holiday).where(Holiday.day >= date(year, 1, 1), Holiday.day <= date(year, 12, 31))
        )
    by_day = {d: (k, n) for d, k, n in rows}
    session.add_all(Holiday(day=d, kind=k, name=n) for d, (k, n) in sorted(by_day.items()))
    return len(by_day)


def list_holidays(session: Session) -> list[Holiday]:
    return list(session.scalars(select(Holiday).order_by(Holiday.day)))
