"""`tallies verify`: recount every response from its raw answers and compare with the stored
tally rows; any difference is reported (and the command exits non-zero)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Answer, Response, Survey, TallyMonth, TallyRow

# --- verification -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    key: tuple  # a TallyKey (for the monthly rollup: its day is the month's first day)
    stored: int
    recounted: int
    table: str = "tally_rows"

    def describe(self) -> str:
        survey_id, dept_id, day, channel, status, segment, question, option = self.key
        when = f"day={day}" if self.table == "tally_rows" else f"month={day:%Y-%m}"
        return (
            f"{self.table}: survey={survey_id} department={dept_id} {when} channel={channel} status={status} "
            f"segment={segment} question={question} option={option}: "
            f"stored {self.stored}, recounted {self.recounted}"
        )


def recount(session: Session, survey: Survey) -> Counter:
    """Every tally row of a survey recomputed from its raw responses and answers."""
    from app.tally.rows import response_tally_keys

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
    current, head = None, None
    answers: list = []

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


def _stored(session: Session, model, columns: tuple[str, ...], survey: Survey) -> dict[tuple, int]:
    stored: dict[tuple, int] = {}
    selected = [getattr(model, c) for c in columns]
    for row in session.execute(select(*selected, model.count).where(model.survey_id == survey.id)):
        key = tuple(row[:-1])
        if isinstance(key[2], datetime):
            key = (*key[:2], key[2].date(), *key[3:])
        stored[key] = stored.get(key, 0) + int(row[-1])
    return stored


def _differences(table: str, stored: dict, expected: dict) -> list[Difference]:
    return [
        Difference(key, stored.get(key, 0), expected.get(key, 0), table)
        for key in set(stored) | set(expected)
        if stored.get(key, 0) != expected.get(key, 0)
    ]


def verify_tallies(session: Session, survey: Survey) -> list[Difference]:
    """Compare the stored daily tally rows and their monthly rollup with a recount from the raw
    answers (the rollup against the recount summed per month, not against the daily rows)."""
    from app.tally.rows import KEY_COLUMNS, MONTH_COLUMNS, month_counts

    expected = recount(session, survey)
    differences = _differences("tally_rows", _stored(session, TallyRow, KEY_COLUMNS, survey), expected)
    differences += _differences(
        "tally_months", _stored(session, TallyMonth, MONTH_COLUMNS, survey), month_counts(expected)
    )
    return sorted(differences, key=lambda d: (d.table != "tally_rows", *(str(part) for part in d.key)))
