"""survey.intake_shards: the stream split by department, one slot per submission, a drain per shard.

Runs on a single Redis and on the suite's Redis Cluster (conftest parametrises redis_kind for
tests/intake/): on the cluster the record script would fail with CROSSSLOT if one submission's
keys were in two slots.
"""

from __future__ import annotations

import time

import pytest
from redis.crc import key_slot

from app import create_app, intake
from app.intake import drain
from app.intake.respondents import _scan_key, record_scan, respondent_key
from app.intake.shards import LEGACY_STREAM, done_key, drain_flag_key, shard_of, stream_key
from app.schedule import periodic_jobs
from tests.conftest import empty_tables, settings_for
from tests.intake.test_intake import counts, full_answers

SURVEY = "demo-departments"
SHARDS = 4
# Demo departments, one per shard of four (CRC-32 of the code mod 4).
CODES = {0: "D04", 1: "D02", 2: "D05", 3: "D08"}


@pytest.fixture
def sharded(tmp_path, database_url, redis_client, redis_url, queue_url):
    app = create_app(
        settings_for(tmp_path, database_url, redis_url, queue_url, survey={"intake_shards": SHARDS})
    )
    empty_tables(app.extensions["wxsurvey_db"].engine)
    with app.app_context():
        from app.db import db
        from app.org.demo import load_demo
        from app.org.surveys import sync_templates

        sync_templates(db.session)
        load_demo(db.session, tmp_path)
        db.session.commit()
        yield app, db.session
        db.session.remove()
    app.extensions["wxsurvey_db"].engine.dispose()


def answer(app, session, redis, code: str, openid: str):
    settings = app.config["SETTINGS"]
    form, dept = intake.load_form(session, SURVEY, code)
    token = intake.issue_form_token(settings.app.secret_key, time.time() - 30)
    return intake.record_response(
        session, redis, settings, form=form, department=dept, openid=openid, data=full_answers(form),
        form_token=token,
    )  # fmt: skip


def test_one_submissions_keys_share_a_slot():
    assert {shard: shard_of(code, SHARDS) for shard, code in CODES.items()} == {0: 0, 1: 1, 2: 2, 3: 3}
    assert all(shard_of(code, 1) == 0 for code in CODES.values())
    for shard, code in CODES.items():
        keys = [done_key(shard, 1, 2, "k" * 64), stream_key(shard), _scan_key("k" * 64, code, SHARDS),
                drain_flag_key(shard)]  # fmt: skip
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys
    assert len({key_slot(stream_key(k).encode()) for k in range(SHARDS)}) == SHARDS


def test_departments_go_to_their_shard_and_each_drain_takes_its_own(sharded, redis_client):
    app, session = sharded
    secret = app.config["SETTINGS"].survey.respondent_secret
    record_scan(redis_client, respondent_key(secret, "o-0"), CODES[0], 1, SHARDS)
    outcomes = {
        shard: answer(app, session, redis_client, code, f"o-{shard}") for shard, code in CODES.items()
    }
    assert all(o.kind == "accepted" and o.shard == s and o.drain_wanted for s, o in outcomes.items())
    assert answer(app, session, redis_client, CODES[2], "o-2").kind == "already"
    assert [redis_client.xlen(stream_key(k)) for k in range(SHARDS)] == [1, 1, 1, 1]
    status = drain.intake_status(session, redis_client, shards=SHARDS)
    assert (status["backlog"], status["shards"]) == (4, SHARDS)
    report = drain.drain_backlog(session, redis_client, shard=2)
    assert report.inserted == 1 and redis_client.xlen(stream_key(2)) == 0
    assert redis_client.xlen(stream_key(3)) == 1, "another shard's drain left it alone"
    assert counts(session)[0] == 1


def test_the_periodic_safety_net_covers_every_shard(sharded, redis_client):
    app, session = sharded
    for shard, code in CODES.items():
        for i in range(3):
            answer(app, session, redis_client, code, f"o-{shard}-{i}")
    redis_client.xadd(LEGACY_STREAM, redis_client.xrange(stream_key(0), count=1)[0][1])  # pre-shard backlog
    jobs = [job for job in periodic_jobs(app.config["SETTINGS"]) if job.name.startswith("intake-drain")]
    assert [job.name for job in jobs] == [
        "intake-drain",
        "intake-drain:1",
        "intake-drain:2",
        "intake-drain:3",
    ]
    from app.jobs import intake as intake_jobs

    for job in jobs:
        assert job.func == "app.jobs.intake.drain_intake"
        intake_jobs.drain_intake(0.5, *job.args[1:])  # what the scheduler enqueues, with a short clock
    assert counts(session)[0] == 4 * 3, "the legacy copy of an entry was a duplicate, dropped"
    assert drain.intake_status(session, redis_client, shards=SHARDS)["backlog"] == 0
    assert not redis_client.exists(LEGACY_STREAM) or redis_client.xlen(LEGACY_STREAM) == 0


def test_a_shard_drain_runs_as_an_rq_job(sharded, redis_client, queue_url):
    import redis as redis_lib

    from app.jobs.intake import request_drain
    from app.jobs.queues import get_queue
    from app.jobs.worker import WxsurveyWorker

    app, session = sharded
    outcome = answer(app, session, redis_client, CODES[3], "o-rq")
    request_drain(outcome.shard)
    raw = redis_lib.Redis.from_url(queue_url)
    queue = get_queue("intake", raw)
    job = queue.jobs[0]
    assert job.args[-1] == 3, "the job names its shard"
    WxsurveyWorker([queue], connection=raw).work(burst=True)
    assert counts(session)[0] == 1 and redis_client.xlen(stream_key(3)) == 0
