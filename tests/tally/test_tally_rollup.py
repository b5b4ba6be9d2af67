"""The monthly rollup (tally_months): kept equal to the daily tally rows by every writer, read for
month-aligned periods with the same figures as the daily rows and the raw answers."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, update

from app.integrity.review import decide
from app.models import Response, TallyMonth, TallyRow
from app.org.departments import get_department
from app.org.surveys import get_survey
from app.tally.params import parse_period
from app.tally.queries import _raw_counts, _row_counts, month_aligned, tallies, tally_source
from app.tally.report import tally_dict
from app.tally.verify import verify_tallies
from tests.factories import random_load, stored_tallies

CODES = ("D01", "D08", "D09", "D18", "D22")


@pytest.fixture
def loaded(session, demo):
    survey = get_survey(session, "demo-departments")
    random_load(session, survey, [get_department(session, c) for c in CODES], 300, seed=11)
    session.commit()
    return survey


@pytest.mark.parametrize(
    "text, rollup",
    [
        (None, True), ("month", True), ("quarter", True), ("year", True), ("survey", True),
        ("2025", True), ("month:2025-Q2", True), ("2025-02..2025-05", True), ("2025-02-01..2025-03-31", True),
        ("day", False), ("week", False), ("2025-W10", False), ("2025-02-03", False),
        ("month:2025-02-02..2025-03-31", False), ("2025-02-01..2025-03-30", False),
        ("2024-02-01..2024-02-28", False), ("2024-02-01..2024-02-29", True),
    ],
)  # fmt: skip
def test_which_table_a_period_reads(text, rollup):
    span = parse_period(text)
    assert month_aligned(span) is rollup
    assert tally_source(span)[0] is (TallyMonth if rollup else TallyRow)


def test_rollup_equals_daily_rows_after_a_random_load(session, loaded):
    daily, monthly = stored_tallies(session, loaded)
    assert monthly and monthly == daily
    assert sum(monthly.values()) == sum(daily.values())
    assert verify_tallies(session, loaded) == []


def test_rollup_follows_review_moves(session, loaded):
    rng = random.Random(4)
    held = list(session.scalars(select(Response.id).where(Response.status == "quarantined")))
    counted = list(session.scalars(select(Response.id).where(Response.status == "counted")))
    assert len(held) >= 4
    for response_id in rng.sample(held, 4):
        decide(session, response_id, rng.choice(["accept", "reject"]), "人工复核", actor="tester")
    for response_id in rng.sample(counted, 3):
        decide(session, response_id, "reject", "重复提交", actor="tester")
    session.commit()
    daily, monthly = stored_tallies(session, loaded)
    assert monthly == daily
    assert verify_tallies(session, loaded) == []


@pytest.mark.parametrize(
    "dims, period",
    [
        (["department", "question", "option"], None),
        (["category", "period"], "month"),
        (["period", "channel", "segment"], "quarter"),
        (["region", "period", "question", "option"], "year"),
        (["department", "period"], "survey"),
        (["level", "question", "option"], "{y}-02..{y}-04"),
        (["department", "period"], "month:{y}-Q2"),
    ],
)
def test_rollup_figures_equal_daily_rows_and_raw_answers(session, loaded, monkeypatch, dims, period):
    span = parse_period(period and period.format(y=loaded.period_start.year))
    assert tally_source(span)[0] is TallyMonth
    segment = next(q for q in loaded.questions if q.segment)
    scope = [get_department(session, c).id for c in CODES[:3]]
    for dept_ids in (None, scope):
        from_months, _ = _row_counts(session, loaded, list(dims), span, dept_ids, None)
        from_raw, _ = _raw_counts(session, loaded, list(dims), span, dept_ids, segment, None)
        assert from_months and from_months == from_raw, (dims, period, dept_ids)
    rolled_up = tally_dict(tallies(session, loaded, group_by=dims, period=span))
    monkeypatch.setattr("app.tally.queries.tally_source", lambda span: (TallyRow, TallyRow.day))
    assert tally_dict(tallies(session, loaded, group_by=dims, period=span)) == rolled_up


def test_verify_reports_a_tampered_rollup_row(session, loaded):
    row = session.scalars(select(TallyMonth).where(TallyMonth.question_id != 0).limit(1)).one()
    before = row.count
    key = {c: getattr(row, c) for c in ("survey_id", "question_id", "option_id", "department_id", "month",
                                         "channel", "status", "segment_option_id")}  # fmt: skip
    session.execute(update(TallyMonth).filter_by(**key).values(count=TallyMonth.count + 2))
    session.commit()
    differences = verify_tallies(session, loaded)
    assert [d.table for d in differences] == ["tally_months"]
    text = differences[0].describe()
    assert text.startswith("tally_months: ") and f"month={row.month:%Y-%m}" in text
    assert f"stored {before + 2}, recounted {before}" in text


def test_verify_reads_one_moment_while_a_drain_commits(app, session, loaded):
    """A drain committing between verify's recount and its read of the stored rows must not show
    up as a difference: verify reads one snapshot (it did not, under load in `make chaos`)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from tests.factories import add_response

    engine = session.get_bind().engine
    committed = []

    def drain_commits_now(conn, cursor, statement, params, context, executemany):
        if committed or "FROM tally_rows" not in statement:
            return
        committed.append(True)
        with Session(engine) as other:  # another connection, as a worker's drain would be
            survey = get_survey(other, "demo-departments")
            add_response(other, survey, get_department(other, "D08"), {"overall": "satisfied"})
            other.commit()

    event.listen(engine, "before_cursor_execute", drain_commits_now)
    try:
        assert verify_tallies(session, loaded) == []
    finally:
        event.remove(engine, "before_cursor_execute", drain_commits_now)
    assert committed
    assert verify_tallies(session, loaded) == []  # and the new answer is counted right afterwards
