# A response on its way to SQL: its wire form on the `wx:intake` stream (Submission) and the writer
# that inserts a batch of them with their answers and tally counts in the caller's transaction.
from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.models import Response
from app.tally.rows import apply_tally, response_tally_keys

AnswerTriple = tuple[int, int | None, str | None]  # (question id, option id, text)
# Flags that put a response under review (status "quarantined", out of the official figures).
# Empty: every response is counted and reviewers move flagged ones by hand (see app.intake.record).
QUARANTINE_FLAGS: frozenset[str] = frozenset()


def status_for(flags: list[str]) -> str:
    return "quarantined" if QUARANTINE_FLAGS.intersection(flags) else "counted"


# --- the submission and its wire form ---------------------------------------------------------


@dataclass(slots=True)
class Submission:
    idempotency_key: str
    survey_id: int
    department_id: int
    respondent_key: str
    submitted_at: datetime
    channel: str
    answers: list[AnswerTriple]
    segment_question_id: int | None
    meta: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    # A 差评 with a comment: {"w": deadline in working days, "c": sealed contact (with consent only)}.
    case: dict[str, Any] | None = None
    # Set by the stuffing detector in the drain (app.integrity), never carried on the stream.
    score: int | None = None
    reasons: list | None = None  # (none found: None, score 0)
    held: bool = False  # the detector quarantines it
    ms: int = 0  # submitted_at in ms since the epoch, as on the stream (0: not decoded from it)

    def encode(self) -> bytes:
        """Compact JSON for the stream (well under 1 KB for the standard questionnaire)."""
        body = {
            "i": self.idempotency_key,
            "s": self.survey_id,
            "d": self.department_id,
            "r": self.respondent_key,
            "t": int(self.submitted_at.timestamp() * 1000),
            "c": self.channel,
            "g": self.segment_question_id or 0,
            "a": [[q, o or 0, t] if t else [q, o or 0] for q, o, t in self.answers],
            "m": self.meta,
            "f": self.flags,
        }
        if self.case is not None:
            body["k"] = self.case
        return orjson.dumps(body)

    @classmethod
    def decode(cls, payload: str | bytes, no_scan: bool = False, followed: str | None = None) -> Submission:
        """Parse a stream entry (ValueError when malformed); `no_scan` and `followed` (ms, when the
        person followed the account) come from the Lua script."""
        try:
            d = orjson.loads(payload)
            ms = int(d["t"])
            answers = [(int(a[0]), int(a[1]) or None, str(a[2]) if len(a) > 2 else None) for a in d["a"]]
            meta, flags = d.get("m") or {}, d.get("f") or []
            if type(meta) is not dict or type(flags) is not list:
                raise TypeError("meta or flags")
            sub = cls(
                str(d["i"]),
                int(d["s"]),
                int(d["d"]),
                str(d["r"]),
                datetime.fromtimestamp(ms / 1000, UTC),
                str(d["c"]),
                answers,
                int(d["g"]) or None,
                meta,
                flags,
                d.get("k") if type(d.get("k")) is dict else None,
                ms=ms,
            )
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ValueError(f"malformed intake entry: {exc}") from None
        if len(sub.idempotency_key) != 64 or len(sub.respondent_key) != 64:
            raise ValueError("malformed intake entry: bad key length")
        meta["scanned"] = not no_scan
        if followed:
            meta["fw"] = int(followed)
        if no_scan and "no_scan" not in flags:
            flags.append("no_scan")
        return sub

    @property
    def status(self) -> str:
        return "quarantined" if self.held else status_for(self.flags)

    def tally_keys(self):
        return response_tally_keys(
            survey_id=self.survey_id,
            department_id=self.department_id,
            submitted_at=self.submitted_at,
            channel=self.channel,
            status=self.status,
            answers=self.answers,  # (question, option, text): a non-empty text counts as has_text
            segment_question_id=self.segment_question_id,
        )


RESPONSE_COLUMNS = ("idempotency_key", "survey_id", "department_id", "respondent_key", "submitted_at",
                    "received_at", "channel", "status", "meta", "flags", "score", "reasons")  # fmt: skip
ANSWER_COLUMNS = ("response_id", "question_id", "option_id", "text")
ROWS_PER_INSERT = 3000  # responses per INSERT ... VALUES on SQLite (30,000 parameters), fewer if
# the library allows fewer variables; each statement has its fixed cost: 500 per statement was
# 10-20% slower for the same rows.
_PG_ARRAY_TYPES = ("text", "bigint", "bigint", "text", "timestamptz", "timestamptz", "text", "text", "jsonb",
                   "jsonb", "smallint", "jsonb")  # fmt: skip


def _json_text(value) -> str:
    return orjson.dumps(value).decode()


@functools.lru_cache(maxsize=256)
def _flags_text(flags: tuple[str, ...]) -> str:
    return _json_text(list(flags))  # a handful of distinct flag lists: encoded once each


@functools.lru_cache(maxsize=8)  # one per engine's dialect
def _time_binder(dialect):
    """The dialect's own bind processor for the timestamp columns (identity where there is none,
    as on PostgreSQL), looked up once, so rows written through the driver are stored exactly as
    the ORM would store them. The JSON columns travel as compact JSON text (cast to jsonb on
    PostgreSQL)."""
    column = Response.__table__.c.submitted_at
    return column.type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)


def _insert_responses(conn, rows: list[list]) -> dict[str, int]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING through the driver: multi-row VALUES in
    chunks of ROWS_PER_INSERT on SQLite, one statement over unnest()ed arrays on PostgreSQL.
    Returns {idempotency key: id} of the rows actually inserted."""
    head = f"INSERT INTO responses ({', '.join(RESPONSE_COLUMNS)}) "
    tail = " ON CONFLICT DO NOTHING RETURNING idempotency_key, id"
    if conn.dialect.name == "postgresql":
        columns = [list(column) for column in zip(*rows, strict=True)]
        sql = head + "SELECT * FROM unnest(" + ", ".join(f"%s::{t}[]" for t in _PG_ARRAY_TYPES) + ")" + tail
        return dict(conn.exec_driver_sql(sql, tuple(columns)).all())
    group = "(" + ",".join(["?"] * len(RESPONSE_COLUMNS)) + ")"
    per = min(ROWS_PER_INSERT, _sqlite_max_variables(conn) // len(RESPONSE_COLUMNS))
    ids: dict[str, int] = {}
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        params = tuple(value for row in chunk for value in row)
        ids.update(
            conn.exec_driver_sql(head + "VALUES " + ",".join([group] * len(chunk)) + tail, params).all()
        )
    return ids


def _sqlite_max_variables(conn) -> int:
    driver = conn.connection.driver_connection
    return driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def _insert_answers(conn, rows: list[tuple]) -> None:
    """Answer rows through the driver: COPY on PostgreSQL, executemany on SQLite."""
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY answers ({', '.join(ANSWER_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.close()
        return
    conn.exec_driver_sql(f"INSERT INTO answers ({', '.join(ANSWER_COLUMNS)}) VALUES (?, ?, ?, ?)", rows)


def write_responses(session: Session, submissions: list[Submission]) -> list[Submission]:
    """Insert responses, their answers and their tally counts in the caller's transaction.

    Idempotent: a response whose idempotency key or (survey, department, respondent) already
    exists is skipped by ON CONFLICT DO NOTHING; returns the submissions actually inserted.
    The rows go through the driver (multi-row INSERT ... RETURNING, then executemany or COPY),
    not through SQLAlchemy's per-row statement machinery: this is the drain's hot loop.
    """
    if not submissions:
        return []
    conn = session.connection()
    if conn.dialect.name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"intake writes for {conn.dialect.name}")
    bind_time = _time_binder(conn.dialect)
    received = bind_time(datetime.now(UTC))  # the same for every row: converted once
    rows = [
        [s.idempotency_key, s.survey_id, s.department_id, s.respondent_key, bind_time(s.submitted_at),
         received, s.channel, s.status, _json_text(s.meta), _flags_text(tuple(s.flags)), s.score,
         _json_text(s.reasons) if s.reasons else None]
        for s in submissions
    ]  # fmt: skip
    ids = _insert_responses(conn, rows)
    # A key repeated inside one batch is inserted once: keep the first submission carrying it.
    seen: set[str] = set()
    inserted = []
    for s in submissions:
        if s.idempotency_key in ids and s.idempotency_key not in seen:
            seen.add(s.idempotency_key)
            inserted.append(s)
    answer_rows = [(ids[s.idempotency_key], q, o, t) for s in inserted for q, o, t in s.answers]
    if answer_rows:
        _insert_answers(conn, answer_rows)
    apply_tally(session, [key for s in inserted for key in s.tally_keys()])
    followups = [(ids[s.idempotency_key], s) for s in inserted if s.case is not None]
    if followups:
        from app.cases.opening import open_cases  # rare: only 差评 with a comment

        open_cases(session, followups)
    return inserted
