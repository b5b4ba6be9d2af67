"""The earlier-answer look-up on held connections (app.db.HeldReads): the moment as SQL stored it,
no pool slot taken, at most the pool's size kept idle, a connection the server dropped replaced
within the same look-up, every held connection closed with the engine, a plan made for the table
as it is now, no wait without end on a server that never answers, and no wait longer than a
moment on a table a migration holds; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.orm import Session

from app.db import NETWORK_LIMITS, SESSION_OPTIONS, _connect_args, held_reads, make_engine
from app.intake import load_form
from app.intake.record import previous_answer
from app.models import Response
from app.org.departments import get_department
from app.org.surveys import get_survey
from tests.factories import add_response
from tests.public.test_questionnaire import answers, login

SURVEY, CODE = "demo-departments", "D08"
GIVEN_UP = "wxsurvey_answered_look_ups_given_up_total"


@pytest.fixture
def answered(app, session, demo):
    survey, dept = get_survey(session, SURVEY), get_department(session, CODE)
    moment = datetime(2026, 12, 1, 9, 30, 15, 250_000, tzinfo=UTC)
    add_response(session, survey, dept, {"overall": "satisfied"}, submitted_at=moment, respondent="r-1")
    session.commit()
    form, info = load_form(session, SURVEY, CODE)
    return form, info, moment


def _backends(engine) -> set[int]:
    """The PostgreSQL backends of this test's schema (its search_path names it)."""
    admin = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            mine = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> :me"),
                {"me": mine},
            ).scalars()
            return set(pids)
    finally:
        admin.dispose()


def test_the_earlier_answer_is_found_in_sql_without_a_pool_slot(app, session, redis_client, answered):
    form, dept, moment = answered
    engine = session.get_bind()
    assert previous_answer(session, redis_client, form, dept, "r-1") == moment  # aware, to the ms
    assert previous_answer(session, redis_client, form, dept, "r-2") is None
    assert engine.pool.checkedout() == 0  # the session's connection went back; the held one is not the pool's
    assert session().in_transaction() is False  # the look-up opened no transaction of the session


def test_a_dropped_connection_is_replaced_within_the_look_up(app, session, redis_client, answered):
    form, dept, moment = answered
    engine = session.get_bind()
    reads = held_reads(engine)
    assert previous_answer(session, redis_client, form, dept, "r-1") == moment
    if engine.dialect.name == "postgresql":
        ((_, held),) = reads._idle
        pid = held.info.backend_pid
        admin = create_engine(engine.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        admin.dispose()
    else:
        reads._idle[0][1].close()  # a closed handle: the driver's error on use
    assert previous_answer(session, redis_client, form, dept, "r-1") == moment
    assert previous_answer(session, redis_client, form, dept, "r-3") is None


def test_held_connections_close_with_the_engine(app, session, redis_client, answered):
    form, dept, _ = answered
    engine = session.get_bind()
    session.close()
    engine.dispose()
    before = _backends(engine) if engine.dialect.name == "postgresql" else set()
    assert previous_answer(session, redis_client, form, dept, "r-1") is not None
    reads = held_reads(engine)
    ((_, held),) = reads._idle
    if engine.dialect.name == "postgresql":
        pid = held.info.backend_pid
        assert pid in _backends(engine) - before
    engine.dispose()
    assert reads._idle == []
    if engine.dialect.name == "postgresql":
        deadline = time.monotonic() + 10
        while pid in _backends(engine) and time.monotonic() < deadline:
            time.sleep(0.05)  # (polling for the server to see the close)
        assert pid not in _backends(engine)
    else:
        with pytest.raises(Exception, match="closed"):
            held.cursor()


def test_at_most_the_pools_size_are_open(app, session, redis_client, answered):
    """Look-ups in flight each take one of ours up to the pool's size; past it they go through the
    pool (no backend opened and closed per look-up); given back, they wait idle for the next."""
    form, dept, moment = answered
    engine = session.get_bind()
    reads = held_reads(engine)
    taken = [reads._take(engine) for _ in range(reads.keep)]  # as many look-ups in flight
    assert None not in taken and reads._take(engine) is None
    assert previous_answer(session, redis_client, form, dept, "r-1") == moment  # the pool's way
    assert reads._open == reads.keep and engine.pool.checkedout() == 0
    for held in taken:
        reads._give(*held)
    assert previous_answer(session, redis_client, form, dept, "r-1") == moment
    assert (reads._open, len(reads._idle)) == (reads.keep, reads.keep)


def test_a_look_up_is_planned_for_the_table_as_it_is_now(app, session, answered):
    """A connection lives as long as its process. On PostgreSQL a statement it has run a few times
    must not keep the plan made when the table was small: at 100 answers that plan filters every
    answer of the survey, and it would still at 3,100 (and at a campaign's millions) until an
    ANALYZE happened to invalidate it."""
    form, dept, moment = answered
    engine = session.get_bind()
    postgresql = engine.dialect.name == "postgresql"

    def grow(first: int, count: int) -> None:
        rows = [
            {"idempotency_key": f"grow-{i}", "survey_id": form.id, "department_id": dept.id,
             "respondent_key": hashlib.sha256(str(i).encode()).hexdigest(), "submitted_at": moment}
            for i in range(first, first + count)
        ]  # fmt: skip
        session.execute(insert(Response), rows)
        session.commit()

    look = "SELECT submitted_at FROM responses WHERE survey_id = {} AND department_id = {} "
    look += "AND respondent_key = {}"
    if postgresql:  # (an autovacuum ANALYZE mid-test would invalidate the plan under test)
        session.execute(text("ALTER TABLE responses SET (autovacuum_enabled = false)"))
        session.commit()
        held = held_reads(engine)._take(engine)
        assert held is not None
        with held[1].cursor() as cur:
            assert cur.execute("SHOW plan_cache_mode").fetchone() == ("force_custom_plan",)
        held_reads(engine)._give(*held)
    grow(0, 100)
    raw = engine.raw_connection()  # (the engine's connect events have run on it)
    try:
        cur = raw.cursor()
        if postgresql:
            cur.execute("PREPARE look(int, int, varchar) AS " + look.format("$1", "$2", "$3"))
            for i in range(12):  # past the runs after which PostgreSQL settles on a generic plan
                cur.execute(f"EXECUTE look({form.id}, {dept.id}, 'new-{i}')")  # (our own constants)
                cur.fetchall()
            raw.commit()
            raw.rollback()  # as the pool resets a connection given back (the setting outlives it)
            grow(100, 3000)
            cur.execute(f"EXPLAIN EXECUTE look({form.id}, {dept.id}, 'new-x')")
        else:
            grow(100, 3000)
            cur.execute("EXPLAIN QUERY PLAN " + look.format("?", "?", "?"), (form.id, dept.id, "new-x"))
        plan = " ".join(str(row) for row in cur.fetchall())
        if postgresql:
            cur.execute("SHOW plan_cache_mode")
            assert cur.fetchone() == ("force_custom_plan",)
        cur.close()
    finally:
        raw.close()
        if postgresql:
            session.execute(text("ALTER TABLE responses RESET (autovacuum_enabled)"))
            session.commit()
    unique = "uq_responses_survey_id_department_id_respondent_key" if postgresql else "sqlite_autoindex"
    assert unique in plan and "Filter" not in plan and "Seq Scan" not in plan, plan


def test_an_engine_is_not_kept_alive_by_its_look_ups(database_url):
    import gc
    import weakref

    engine = create_engine(database_url)
    reads = held_reads(engine)
    assert reads.scalar(text("SELECT 1"), {}) == 1
    gone = weakref.ref(engine)
    engine.dispose()
    del engine
    gc.collect()
    assert gone() is None
    assert reads._open == 0


def test_postgresql_connections_are_bounded_in_time_and_a_url_keeps_its_own(database_url):
    """No connection waits on the network without end (libpq's default): a connect timeout,
    keepalives and a TCP user timeout, unless the URL names its own."""
    if not database_url.startswith("postgresql"):
        assert _connect_args(database_url) == {}  # (SQLite: no network)
        return
    engine = make_engine(database_url)
    given = make_engine(database_url + ("&" if "?" in database_url else "?") + "connect_timeout=2")
    try:
        for made, timeout in ((engine, "5"), (given, "2")):
            with made.connect() as conn:
                raw = conn.connection.driver_connection
                params = {p.keyword.decode(): (p.val or b"").decode() for p in raw.pgconn.info}
            assert params["connect_timeout"] == timeout
            assert params["tcp_user_timeout"] == "30000" and params["keepalives"] == "1"
            assert "search_path" in params["options"] and SESSION_OPTIONS in params["options"]  # both
    finally:
        engine.dispose()
        given.dispose()


def test_the_look_up_gives_up_on_a_database_that_never_answers(session, redis_client, answered, monkeypatch):
    """A server that takes the connection and says nothing (a proxy before a dead database): the
    earlier-answer look-up gives up after the connect timeout and the form is served (the answer
    is checked again when it is sent)."""
    form, dept, _ = answered
    silent = socket.create_server(("127.0.0.1", 0))  # accepted by the kernel, never answered
    monkeypatch.setitem(NETWORK_LIMITS, "connect_timeout", 1)
    engine = make_engine(f"postgresql+psycopg://wxsurvey@127.0.0.1:{silent.getsockname()[1]}/wxsurvey")
    found: list = []
    look_up = threading.Thread(
        target=lambda: found.append(previous_answer(Session(bind=engine), redis_client, form, dept, "r-new")),
        daemon=True,
    )
    try:
        look_up.start()
        look_up.join(20)  # (with libpq's defaults it would wait for ever)
        assert not look_up.is_alive(), "the look-up still waits on a server that never answers"
        assert found == [None]
    finally:
        engine.dispose()
        silent.close()


def _locked(engine):
    """Another connection holding the answers' table as a migration does (PostgreSQL: ACCESS
    EXCLUSIVE, no reader passes; SQLite: a write transaction, which WAL lets readers pass)."""
    raw = engine.raw_connection()
    cursor = raw.cursor()
    if engine.dialect.name == "postgresql":
        # (should another connection hold the table, the test fails rather than waits)
        cursor.execute("SET lock_timeout = '10s'")
        cursor.execute(f"LOCK TABLE {Response.__tablename__} IN ACCESS EXCLUSIVE MODE")
    else:
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute(f"DELETE FROM {Response.__tablename__} WHERE respondent_key = 'nobody'")
    return raw


def _within(seconds: float, work):
    """work() in a thread; its result, or a failure naming the wait when it is still waiting."""
    found: list = []
    worker = threading.Thread(target=lambda: found.append(work()), daemon=True)
    worker.start()
    worker.join(seconds)  # (without a bound, until the lock is released: for ever here)
    assert not worker.is_alive(), "still waiting on the locked table"
    return found[0]


def test_look_ups_give_up_on_a_locked_table_and_the_form_is_served(client, session, redis_client, answered):
    """A `wxsurvey migrate` holding the answers' table at a campaign's peak: each look-up waits at
    most LOOK_UP_TIMEOUT_MS (more at once than the held connections: some take the pool's way),
    a new citizen still gets the form and can answer, the look-ups given up are counted, and once
    the table is free the look-ups find answers again on the same connections."""
    form, dept, moment = answered
    engine = session.get_bind()
    postgres = engine.dialect.name == "postgresql"
    reads = held_reads(engine)
    assert previous_answer(session, redis_client, form, dept, "r-1") == moment  # (one held connection)
    held_before = [conn for _, conn in reads._idle]
    given_up = REGISTRY.get_sample_value(GIVEN_UP, {"reason": "timeout"}) or 0.0
    pooled: list[str] = []  # look-ups that took the pool's way (the held one uses the driver alone)

    def counted(_conn, _cursor, statement, *_) -> None:
        if statement.startswith("SET LOCAL statement_timeout"):
            pooled.append(statement)

    event.listen(engine, "before_cursor_execute", counted)
    lock = _locked(engine)
    burst = ThreadPoolExecutor(max_workers=reads.keep + 3)
    try:
        look_ups = [
            burst.submit(previous_answer, Session(bind=engine), redis_client, form, dept, "r-1")
            for _ in range(reads.keep + 3)
        ]
        found = _within(20, lambda: [f.result() for f in look_ups])
        # PostgreSQL gave up on each (the form then says nothing of the earlier answer; it is
        # checked again when the answer is sent); SQLite's readers pass a writer.
        assert found == [None if postgres else moment] * len(look_ups)
        if postgres:
            assert pooled, "no look-up of the burst took the pool's way"
            assert REGISTRY.get_sample_value(GIVEN_UP, {"reason": "timeout"}) == given_up + len(look_ups)

        login(client, "o-locked")
        page = _within(20, lambda: client.get(f"/q/{SURVEY}/{CODE}"))
        assert page.status_code == 200 and 'name="form_token"' in page.text
        token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
        thanks = _within(20, lambda: client.post(f"/q/{SURVEY}/{CODE}", data=answers(token)))
        assert thanks.status_code == 200 and "感谢" in thanks.text
    finally:
        lock.rollback()
        lock.close()
        burst.shutdown()
        event.remove(engine, "before_cursor_execute", counted)
    assert previous_answer(session, redis_client, form, dept, "r-1") == moment
    idle = [conn for _, conn in reads._idle]
    assert all(any(conn is kept for kept in idle) for conn in held_before)  # a timeout broke no connection
