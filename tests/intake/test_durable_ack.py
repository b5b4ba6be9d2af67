"""redis.ack_replicas: a thank-you only once a replica holds the answer, or SQL does.

A real master and a real replica (redis-server processes): with the replica up the answer is
acknowledged by it and queued as usual; with the replica paused or killed the WAIT times out,
the answer goes straight to SQL, and the drain of its stream entry later inserts nothing.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app import create_app, intake
from app.intake import drain
from app.models import Response
from tests.conftest import empty_tables, settings_for, worker_index
from tests.intake.test_intake import counts, submit
from tests.redis_servers import start_replica_pair

# Generous: a replica that is up answers WAIT at once, even on a machine shared with other suites.
ACK_TIMEOUT_MS = 1500


@pytest.fixture
def pair(tmp_path, request):
    master, replica = start_replica_pair(tmp_path / "pair", worker_index(request.config) + 5)
    yield master, replica
    replica.kill()
    master.kill()


@pytest.fixture
def durable_app(tmp_path, database_url, pair):
    master, _ = pair
    app = create_app(
        settings_for(
            tmp_path, database_url, master.url, redis={"ack_replicas": 1, "ack_timeout_ms": ACK_TIMEOUT_MS}
        )
    )
    empty_tables(app.extensions["wxsurvey_db"].engine)
    with app.app_context():
        from app.db import db
        from app.org.demo import load_demo
        from app.org.surveys import sync_templates

        sync_templates(db.session)
        load_demo(db.session, tmp_path)
        db.session.commit()
        yield app, db.session, master.client
        db.session.remove()
    app.extensions["wxsurvey_db"].engine.dispose()
    intake.degraded.unreplicated = 0


def test_replica_up_acknowledges_through_redis_alone(durable_app, pair):
    app, session, master = durable_app
    replica = pair[1].client
    outcome = submit(app, session, master, "o-up")
    assert outcome.kind == "accepted" and not outcome.unreplicated and not outcome.degraded
    assert replica.xlen(intake.STREAM) == 1, "WAIT returned: the replica holds the entry"
    assert counts(session)[0] == 0, "nothing in SQL before the drain"
    report = drain.drain_backlog(session, master)
    assert (report.inserted, report.duplicates) == (1, 0)


@pytest.mark.parametrize("fault", ["paused", "killed"])
def test_replica_missing_sends_the_answer_to_sql_and_the_drain_inserts_nothing(durable_app, pair, fault):
    app, session, master = durable_app
    replica = pair[1]
    before = submit(app, session, master, "o-before")
    assert before.kind == "accepted" and not before.unreplicated
    replica.pause() if fault == "paused" else replica.kill()
    started = time.monotonic()
    outcome = submit(app, session, master, "o-during")
    waited = time.monotonic() - started
    assert outcome.kind == "accepted" and outcome.unreplicated
    assert waited >= ACK_TIMEOUT_MS / 1000, "the submission waited for the replica up to ack_timeout_ms"
    assert counts(session)[0] == 1, "the unconfirmed answer is in SQL before the thank-you page"
    row = session.scalar(select(Response))
    assert row.meta["via"] == "sql-unreplicated" and row.meta["scanned"] is False and "no_scan" in row.flags
    assert master.xlen(intake.STREAM) == 2, "and still on the stream, for the drain"
    # The same person again: the done key answers, no second row anywhere.
    assert submit(app, session, master, "o-during").kind == "already"
    report = drain.drain_backlog(session, master)
    assert (report.read, report.inserted, report.duplicates) == (2, 1, 1)
    assert counts(session) == (2, 12, 2), "each answer once: the drain's copy of o-during was a no-op"
    assert drain.intake_status(session, master)["unreplicated_sql_writes"] == 1
    if fault == "paused":
        replica.resume()


def test_settings_refuse_nonsense(tmp_path):
    from app.config import ConfigError, load_settings

    (tmp_path / "config.toml").write_text("")

    for overrides, key in (
        ({"redis": {"ack_replicas": -1}}, "redis.ack_replicas"),
        ({"redis": {"ack_timeout_ms": 0}}, "redis.ack_timeout_ms"),
        ({"survey": {"intake_shards": 0}}, "survey.intake_shards"),
        ({"redis": {"url": "redis+cluster://127.0.0.1:1"}}, "redis.queue_url"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_settings(tmp_path / "config.toml", environ={}, overrides=overrides)
