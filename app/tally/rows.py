"""The pre-aggregated tally rows: which rows one response adds to, and adding to them in SQL
(the daily rows and their monthly rollup, in the caller's transaction).

Shared by the drain (adds a batch), integrity review (moves a response between statuses) and
`tallies verify` (recomputes every row from raw answers with the same `response_tally_keys`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.orm import Session

from app.models import TallyMonth, TallyRow, utcnow

# (survey_id, department_id, day, channel, status, segment_option_id, question_id, option_id)
TallyKey = tuple[int, int, date, str, str, int, int, int]
KEY_COLUMNS = ("survey_id", "department_id", "day", "channel", "status", "segment_option_id", "question_id",
               "option_id")  # fmt: skip
# The rollup's key: the same, with the day replaced by the first day of its month.
MONTH_COLUMNS = ("survey_id", "department_id", "month", "channel", "status", "segment_option_id",
                 "question_id", "option_id")  # fmt: skip
CITY_TZ = ZoneInfo("Asia/Shanghai")


def local_day(moment: datetime) -> date:
    """The city's calendar day of a moment (tallies by day/week/month use it)."""
    return moment.astimezone(CITY_TZ).date()


def response_tally_keys(
    *,
    survey_id: int,
    department_id: int,
    submitted_at: datetime,
    channel: str,
    status: str,
    answers: Sequence[tuple[int, int | None, Any]],
    segment_question_id: int | None,
) -> list[TallyKey]:
    """The rows one response counts in: one response row (question 0, option 0), one row per
    chosen option, and one (question, 0) row per non-empty text answer.

    `answers` are (question_id, option_id or None, has_text) triples; has_text may be the text
    itself (only its truth is read).
    """
    segment_option = 0
    if segment_question_id:
        segment_option = next((o for q, o, _ in answers if q == segment_question_id and o), 0)
    base = (survey_id, department_id, local_day(submitted_at), channel, status, segment_option)
    keys: list[TallyKey] = [(*base, 0, 0)]
    keys += [(*base, question_id, option_id or 0) for question_id, option_id, has_text in answers
             if option_id or has_text]  # fmt: skip
    return keys


def month_key(key: TallyKey) -> TallyKey:
    """The rollup row a daily row adds to: its day becomes the first day of the month."""
    return (key[0], key[1], key[2].replace(day=1), *key[3:])


def month_counts(counts: Counter | dict) -> Counter:
    """Daily counts (TallyKey -> n) summed into the monthly rollup's keys."""
    months: Counter = Counter()
    for key, n in counts.items():
        months[month_key(key)] += n
    return months


_UPSERT = (
    "INSERT INTO {table} ({columns}, count, updated_at) VALUES ({marks}) ON CONFLICT ({columns}) "
    "DO UPDATE SET count = {table}.count + excluded.count, updated_at = excluded.updated_at"
)


def _upsert_sql(dialect: str, table: str, columns: tuple[str, ...]) -> str:
    """INSERT .. ON CONFLICT (key) DO UPDATE count = count + excluded.count (same text on both engines
    but for the DBAPI's placeholder)."""
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"tally upsert for {dialect}")
    mark = "?" if dialect == "sqlite" else "%s"
    return _UPSERT.format(
        table=table, columns=", ".join(columns), marks=", ".join([mark] * (len(columns) + 2))
    )


def apply_tally(session: Session, keys: Iterable[TallyKey], sign: int = 1) -> int:
    """Add (sign=+1) or remove (sign=-1) one count per key, in the daily rows and their monthly
    rollup: one upsert statement per table, executed over all the rows with the DBAPI's
    executemany (the drain's hot path: no per-row SQLAlchemy processing).

    Runs inside the caller's transaction: the drain commits it with the answers it counts.
    Returns the number of distinct daily rows touched.
    """
    counts = Counter(keys)
    if not counts:
        return 0
    conn = session.connection()
    dialect = conn.dialect.name
    now = utcnow()
    stamp: object
    if dialect == "sqlite":  # stored as SQLAlchemy stores them there: ISO text, UTC without offset
        stamp, as_day = now.strftime("%Y-%m-%d %H:%M:%S.%f"), date.isoformat
    else:
        stamp, as_day = now, _same
    # Sorted, so that concurrent transactions lock rows in the same order (no deadlocks).
    days = [(*key[:2], as_day(key[2]), *key[3:], sign * n, stamp) for key, n in sorted(counts.items())]
    months = [(*key[:2], as_day(key[2]), *key[3:], sign * n, stamp)
              for key, n in sorted(month_counts(counts).items())]  # fmt: skip
    conn.exec_driver_sql(_upsert_sql(dialect, TallyRow.__tablename__, KEY_COLUMNS), days)
    conn.exec_driver_sql(_upsert_sql(dialect, TallyMonth.__tablename__, MONTH_COLUMNS), months)
    return len(days)


def _same(value):
    return value


def tally_total(session: Session, survey_id: int) -> int:
    """Responses counted in the tally rows of a survey (all statuses)."""
    return (
        session.query(func.coalesce(func.sum(TallyRow.count), 0))
        .filter(TallyRow.survey_id == survey_id, TallyRow.question_id == 0)
        .scalar()
    )
