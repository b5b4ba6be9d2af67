"""The detector's second look reads its department's answers by the (department, time) index, and
that index does not take the citizen's earlier-answer look-up from the unique (survey, department,
respondent) index; on SQLite and PostgreSQL, with the statistics of a table that has just grown."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, insert, select, text

from app.integrity.detector import second_look
from app.models import Department, Response
from app.org.surveys import get_survey

SURVEY = "demo-departments"
START = datetime(2026, 12, 1, tzinfo=UTC)


def _grow(session, survey, departments, count: int) -> None:
    """`count` answers, one every 50 seconds from START, the departments taking turns."""
    rows = [
        {
            "idempotency_key": f"grow-{i}",
            "survey_id": survey.id,
            "department_id": departments[i % len(departments)],
            "respondent_key": hashlib.sha256(str(i).encode()).hexdigest(),
            "submitted_at": START + timedelta(seconds=50 * i),
        }
        for i in range(count)
    ]
    session.execute(insert(Response), rows)
    session.commit()


def _plan(session, statement) -> str:
    """The database's plan for a statement as SQLAlchemy sends it (its SQL and driver parameters)."""
    connection = session.connection()
    sent = []

    def keep(conn, cursor, sql, parameters, context, executemany):
        sent.append((sql, parameters))

    event.listen(connection, "before_cursor_execute", keep)
    try:
        session.execute(statement).all()
    finally:
        event.remove(connection, "before_cursor_execute", keep)
    sql, parameters = sent[-1]
    explain = "EXPLAIN " if connection.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    return " ".join(str(row) for row in connection.exec_driver_sql(explain + sql, parameters))


def test_the_second_look_reads_its_department_and_the_look_up_keeps_the_unique_index(app, session, demo):
    postgresql = session.get_bind().dialect.name == "postgresql"
    survey = get_survey(session, SURVEY)
    departments = list(session.scalars(select(Department.id).order_by(Department.id).limit(12)))
    assert len(departments) == 12
    if postgresql:  # (an autovacuum ANALYZE mid-test would change the statistics under test)
        session.execute(text("ALTER TABLE responses SET (autovacuum_enabled = false)"))
        session.commit()
    try:
        _grow(session, survey, departments, 3000)  # 12 departments over 42 hours
        start_ms = int((START + timedelta(hours=20)).timestamp() * 1000)
        look = second_look(departments[3], start_ms, start_ms + 2 * 3600 * 1000)
        rows = session.execute(look).all()
        assert len(rows) == 2 * 3600 // 50 // 12 and {r.department_id for r in rows} == {departments[3]}
        plan = _plan(session, look)
        assert "ix_responses_department_id_submitted_at" in plan, plan

        earlier = select(Response.submitted_at).where(
            Response.survey_id == survey.id,
            Response.department_id == departments[3],
            Response.respondent_key == hashlib.sha256(b"39").hexdigest(),
        )
        moment = session.execute(earlier).scalar_one()
        assert moment.replace(tzinfo=None) == datetime(2026, 12, 1, 0, 32, 30)  # (SQLite's is naive)
        plan = _plan(session, earlier)
        unique = "uq_responses_survey_id_department_id_respondent_key" if postgresql else "sqlite_autoindex"
        assert unique in plan and "ix_responses_department_id_submitted_at" not in plan, plan
    finally:
        if postgresql:
            session.rollback()
            session.execute(text("ALTER TABLE responses RESET (autovacuum_enabled)"))
            session.commit()
