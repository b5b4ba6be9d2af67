"""The pre-aggregated tally rows: which rows one response adds to, and adding to them in SQL.

Shared by the drain (adds a batch), integrity review (moves a response between statuses) and
`tallies verify` (recomputes every row from raw answers with the same `response_tally_keys`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import TallyRow, utcnow

# (survey_id, department_id, day, channel, status, segment_option_id, question_id, option_id)
TallyKey = tuple[int, int, date, str, str, int, int, int]
KEY_COLUMNS = ("survey_id", "department_id", "day", "channel", "status", "segment_option_id", "question_id",
               "option_id")  # fmt: skip
CITY_TZ = ZoneInfo("Asia/Shanghai")
UPSERT_CHUNK = 1000  # rows per statement: keeps SQLite under its bound-parameter limit


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
    answers: Iterable[tuple[int, int | None, bool]],
    segment_question_id: int | None,
) -> list[TallyKey]:
    """The rows one response counts in: one response row (question 0, option 0), one row per
    chosen option, and one (question, 0) row per non-empty text answer.

    `answers` are (question_id, option_id or None, has_text) triples.
    """
    answers = list(answers)
    segment_option = 0
    if segment_question_id:
        segment_option = next((o for q, o, _ in answers if q == segment_question_id and o), 0)
    base = (survey_id, department_id, local_day(submitted_at), channel, status, segment_option)
    keys: list[TallyKey] = [(*base, 0, 0)]
    for question_id, option_id, has_text in answers:
        if option_id:
            keys.append((*base, question_id, option_id))
        elif has_text:
            keys.append((*base, question_id, 0))
    return keys


def apply_tally(session: Session, keys: Iterable[TallyKey], sign: int = 1) -> int:
    """Add (sign=+1) or remove (sign=-1) one count per key, as one upsert statement.

    Runs inside the caller's transaction: the drain commits it with the answers it counts.
    Returns the number of distinct rows touched.
    """
    counts = Counter(keys)
    if not counts:
        return 0
    now = utcnow()
    rows = [
        dict(zip(KEY_COLUMNS, key, strict=True), count=sign * n, updated_at=now)
        for key, n in sorted(counts.items())
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"tally upsert for {dialect}")
    for start in range(0, len(rows), UPSERT_CHUNK):
        stmt = insert(TallyRow).values(rows[start : start + UPSERT_CHUNK])
        stmt = stmt.on_conflict_do_update(
            index_elements=list(KEY_COLUMNS),
            set_={"count": TallyRow.count + stmt.excluded.count, "updated_at": stmt.excluded.updated_at},
        )
        session.execute(stmt)
    return len(rows)


def tally_total(session: Session, survey_id: int) -> int:
    """Responses counted in the tally rows of a survey (all statuses)."""
    return (
        session.query(func.coalesce(func.sum(TallyRow.count), 0))
        .filter(TallyRow.survey_id == survey_id, TallyRow.question_id == 0)
        .scalar()
    )
