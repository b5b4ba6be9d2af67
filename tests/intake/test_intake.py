"""The intake pipeline on real Redis and real SQL: one per person, idempotent, crash- and outage-safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from app import intake
from app.errors import Invalid, Unavailable
from app.intake import drain
from app.intake import store as intake_store
from app.models import Answer, Response, TallyRow
from app.redis_store.embedded import ensure_embedded, stop_embedded
from tests.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]
SURVEY, DEPT = "demo-departments", "D08"


def full_answers(form, choice: int = 1, text: str = "") -> MultiDict:
    data = MultiDict()
    for q in form.questions:
        if q.kind == "single":
            data.add(f"q_{q.key}", q.options[min(choice, len(q.options) - 1)].key)
    if text:
        data.add("q_suggestion", text)
    return data


def submit(
    app, session, client_redis, openid: str, *, token: str | None = None, data=None, loaded=None, **kw
):
    settings = app.config["SETTINGS"]
    form, dept = loaded or intake.load_form(session, SURVEY, DEPT)
    token = token or intake.issue_form_token(settings.app.secret_key, time.time() - 30)
    return intake.record_response(
        session, client_redis, settings, form=form, department=dept, openid=openid,
        data=data if data is not None else full_answers(form), form_token=token, **kw,
    )  # fmt: skip


def counts(session) -> tuple[int, int, int]:
    session.rollback()
    responses = session.scalar(select(func.count()).select_from(Response))
    answers = session.scalar(select(func.count()).select_from(Answer))
    tallied = session.scalar(
        select(func.coalesce(func.sum(TallyRow.count), 0)).where(TallyRow.question_id == 0)
    )
    return responses, answers, tallied


def queue_many(session, client_redis, n: int, prefix: str = "r") -> None:
    """Put n valid responses on the stream directly (fast set-up for drain tests)."""
    import hashlib
    from datetime import UTC, datetime

    form, dept = intake.load_form(session, SURVEY, DEPT)
    answers = [(q.id, q.options[1].id, None) for q in form.questions if q.kind == "single"]
    pipe = client_redis.pipeline(transaction=False)
    for i in range(n):
        sub = intake_store.Submission(
            idempotency_key=hashlib.sha256(f"{prefix}-idem-{i}".encode()).hexdigest(),
            survey_id=form.id, department_id=dept.id,
            respondent_key=hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest(),
            submitted_at=datetime.now(UTC), channel="wechat", answers=answers,
            segment_question_id=form.segment_question_id,
        )  # fmt: skip
        pipe.xadd(intake.STREAM, {"p": sub.encode(), "ns": "0"})
    pipe.execute()


# --- the service ---------------------------------------------------------------------------------


def test_accepts_once_and_drains_with_tally(app, session, demo, redis_client):
    first = submit(app, session, redis_client, "o-1", data=None)
    assert first.kind == "accepted"
    assert redis_client.xlen(intake.STREAM) == 1
    report = drain.drain_backlog(session, redis_client)
    assert (report.inserted, report.duplicates) == (1, 0)
    responses, answers, tallied = counts(session)
    assert (responses, answers, tallied) == (1, 6, 1)
    row = session.scalar(select(Response))
    assert row.respondent_key != "o-1" and "o-1" not in json.dumps(row.meta)
    assert "no_scan" in row.flags and "straightline" in row.flags and row.status == "counted"
    assert redis_client.xlen(intake.STREAM) == 0


def test_intake_queues_the_answers_facts_the_drain_reads(app, session, demo, redis_client):
    """The choice signature and the free text's key are worked out once, at intake; the drain takes
    them from the entry (and stores them with the response for later looks)."""
    from app.integrity.facts import choice_signature, from_submission, text_key

    form, _ = intake.load_form(session, SURVEY, DEPT)
    submit(
        app, session, redis_client, "o-facts", data=full_answers(form, 2, text="窗口的工作人员很耐心，谢谢！")
    )
    payload = redis_client.xrange(intake.STREAM, count=1)[0][1]["p"]
    sub = intake_store.Submission.decode(payload)
    assert sub.meta["sig"] == choice_signature(sub.answers, form.segment_question_id)
    assert sub.meta["tx"] == text_key("窗口的工作人员很耐心，谢谢！")
    queued = sub.meta["sig"]
    sub.meta["sig"] = 12345  # what the entry carries is what the detector uses
    assert from_submission(sub).signature == 12345
    drain.drain_backlog(session, redis_client)
    stored = session.scalar(select(Response))
    assert stored.meta["tx"] == text_key("窗口的工作人员很耐心 谢谢") and stored.meta["sig"] == queued


def test_malformed_stream_entries_go_to_dead_letters_and_the_rest_is_stored(app, session, demo, redis_client):
    queue_many(session, redis_client, 2, prefix="good")
    good = json.loads(redis_client.xrange(intake.STREAM, count=1)[0][1]["p"])
    key = "k" * 64
    bad = [
        {"p": "not json", "ns": "0"},
        {"ns": "0"},  # no payload at all
        {"p": json.dumps({**good, "i": "short"}), "ns": "0"},
        {"p": json.dumps({**good, "m": ["not", "a", "dict"], "i": key}), "ns": "0"},
        {"p": json.dumps({**good, "a": [["one", 2]], "i": key}), "ns": "0"},
        {"p": json.dumps({**good, "t": "yesterday", "i": key}), "ns": "0"},
        {"p": json.dumps({k: v for k, v in good.items() if k != "r"} | {"i": key}), "ns": "0"},
    ]
    for fields in bad:
        redis_client.xadd(intake.STREAM, fields)
    report = drain.drain_backlog(session, redis_client)
    assert (report.inserted, report.malformed) == (2, len(bad))
    assert counts(session)[0] == 2
    assert redis_client.xlen(intake.STREAM) == 0
    dead = redis_client.xrange(intake.DEAD_LETTERS)
    assert len(dead) == len(bad) and all("malformed" in fields["error"] for _, fields in dead)


def test_submission_survives_a_redis_that_forgot_the_script(app, session, demo, redis_client):
    assert submit(app, session, redis_client, "o-s1").kind == "accepted"  # EVAL, then EVALSHA
    holder = redis_client  # on a cluster: the master of the shard's slot, which ran the script
    if isinstance(redis_client, redis_lib.RedisCluster):
        holder = redis_client.get_node_from_key(intake.STREAM).redis_connection
    assert holder.script_exists(intake.RECORD.sha) == [True]
    redis_client.script_flush()  # what a restarted or failed-over Redis looks like
    assert submit(app, session, redis_client, "o-s2").kind == "accepted"
    assert submit(app, session, redis_client, "o-s2").kind == "already"
    assert redis_client.xlen(intake.STREAM) == 2


def test_duplicate_respondent_and_idempotency_key(app, session, demo, redis_client):
    token = intake.issue_form_token(app.config["SETTINGS"].app.secret_key, time.time() - 30)
    assert submit(app, session, redis_client, "o-2", token=token).kind == "accepted"
    assert submit(app, session, redis_client, "o-2", token=token).kind == "resent"
    assert submit(app, session, redis_client, "o-2").kind == "already"
    assert submit(app, session, redis_client, "o-3").kind == "accepted"
    drain.drain_backlog(session, redis_client)
    assert counts(session)[0] == 2
    # Redis lost its memory of o-2 (a flush): the SQL constraint still keeps one.
    redis_client.delete(*redis_client.keys("wx:done:*"))
    assert submit(app, session, redis_client, "o-2").kind == "accepted"
    report = drain.drain_backlog(session, redis_client)
    assert (report.inserted, report.duplicates) == (0, 1)
    assert counts(session) == (2, 12, 2)


def test_scan_and_integrity_flags(app, session, demo, redis_client):
    from app.intake.respondents import record_scan, respondent_key

    settings = app.config["SETTINGS"]
    record_scan(redis_client, respondent_key(settings.survey.respondent_secret, "o-4"), DEPT, 1)
    form, _ = intake.load_form(session, SURVEY, DEPT)
    data = full_answers(form)
    data.setlist("q_overall", [form.questions[0].options[0].key])  # not straight-lined
    token = intake.issue_form_token(settings.app.secret_key)  # submitted at once: too fast
    submit(app, session, redis_client, "o-4", data=data, token=token, user_agent="Mozilla MicroMessenger/8",
           remote_addr="203.0.113.77")  # fmt: skip
    drain.drain_backlog(session, redis_client)
    row = session.scalar(select(Response))
    assert row.flags == ["too_fast"] and row.status == "counted"
    assert row.meta["scanned"] is True and row.meta["ua"] == "wechat" and row.meta["ip"] == "203.0.113.0/24"


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d, f: d.pop("q_overall"), "overall"),
        (lambda d, f: d.add("q_nonexistent", "x"), "_form"),
        (lambda d, f: d.setlist("q_overall", ["no_such_option"]), "overall"),
        (lambda d, f: d.setlist("q_overall", ["satisfied", "basic"]), "overall"),
        (lambda d, f: d.add("q_suggestion", "长" * 501), "suggestion"),
        (lambda d, f: d.setlist("q_suggestion", ["a", "b"]), "suggestion"),
    ],
    ids=["missing", "unknown-question", "unknown-option", "two-for-single", "text-too-long", "text-twice"],
)
def test_bad_answers_store_nothing(app, session, demo, redis_client, change, field):
    form, _ = intake.load_form(session, SURVEY, DEPT)
    data = full_answers(form)
    change(data, form)
    with pytest.raises(Invalid) as caught:
        submit(app, session, redis_client, "o-5", data=data)
    assert field in caught.value.errors
    assert redis_client.xlen(intake.STREAM) == 0 and not redis_client.keys("wx:done:*")


def test_forged_token_is_refused(app, session, demo, redis_client):
    token = intake.issue_form_token("another-secret-key")
    with pytest.raises(Invalid):
        submit(app, session, redis_client, "o-6", token=token)
    assert redis_client.xlen(intake.STREAM) == 0


def test_replay_after_crash_before_ack(app, session, demo, redis_client):
    queue_many(session, redis_client, 40)
    drain.ensure_group(redis_client)
    entries = drain.read_batch(redis_client, "dying-consumer", 25)
    drain.store_batch(session, redis_client, entries, drain.DrainReport())  # committed, never acked
    assert counts(session)[0] == 25
    report = drain.drain_backlog(session, redis_client, consumer="heir", claim_idle_ms=0)
    assert report.reclaimed == 25 and report.duplicates == 25 and report.inserted == 15
    assert counts(session) == (40, 240, 40)
    assert redis_client.xlen(intake.STREAM) == 0
    assert redis_client.xpending(intake.STREAM, drain.GROUP)["pending"] == 0


def test_batch_write_through_the_driver_round_trips_and_dedupes(app, session, demo):
    """write_responses bypasses the ORM: what it stores must read back as the ORM's own rows,
    across several INSERT chunks, with in-batch duplicates (same key, same person) kept once."""
    import hashlib
    from datetime import UTC, datetime

    form, dept = intake.load_form(session, SURVEY, DEPT)
    answers = [(q.id, q.options[2].id, None) for q in form.questions if q.kind == "single"]
    answers.append((form.questions[-1].id, None, "窗口服务 ‘好’ \\ 100%"))
    when = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)

    def sub(i: int, key: str | None = None, person: str | None = None) -> intake_store.Submission:
        return intake_store.Submission(
            key or hashlib.sha256(f"k-{i}".encode()).hexdigest(), form.id, dept.id,
            person or hashlib.sha256(f"p-{i}".encode()).hexdigest(), when, "wechat", answers,
            form.segment_question_id, {"completion_ms": i, "ip": None, "ua": "wechat"}, ["too_fast"],
        )  # fmt: skip

    n = intake_store.ROWS_PER_INSERT + 7
    batch = [sub(i) for i in range(n)]
    batch.append(sub(0))  # the same form again
    batch.append(sub(n, person=batch[1].respondent_key))  # the same person, another form
    inserted = intake_store.write_responses(session, batch)
    session.commit()
    assert len(inserted) == n and inserted == batch[:n]
    assert intake_store.write_responses(session, batch) == []  # a replay inserts nothing
    session.commit()
    assert counts(session) == (n, n * len(answers), n)
    row = session.scalar(select(Response).where(Response.idempotency_key == batch[3].idempotency_key))
    assert row.meta == {"completion_ms": 3, "ip": None, "ua": "wechat"} and row.flags == ["too_fast"]
    assert row.submitted_at.replace(tzinfo=UTC) == when and row.status == "counted"
    assert sorted((a.question_id, a.option_id, a.text) for a in row.answers) == sorted(answers)
    session.rollback()


def _env(app, redis_url: str, **extra: str) -> dict[str, str]:
    settings = app.config["SETTINGS"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")}
    env.update(
        WXSURVEY_DATABASE_URL=settings.database.url,
        WXSURVEY_REDIS_URL=redis_url,
        WXSURVEY_REDIS_QUEUE_URL=settings.redis.queue_url,
        WXSURVEY_APP_VAR_DIR=str(settings.var_dir),
        WXSURVEY_APP_SECRET_KEY=settings.app.secret_key,
        WXSURVEY_SURVEY_RESPONDENT_SECRET=settings.survey.respondent_secret,
        WXSURVEY_APP_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def test_a_lingering_drain_follows_the_stream_in_one_run(app, session, demo, redis_client):
    """The drain job's mode: entries arriving while it waits are written by the same run, the
    drain flag stays set meanwhile (no second job), and the run ends once the stream is quiet."""
    import threading

    queue_many(session, redis_client, 5, prefix="early")
    reports: list[drain.DrainReport] = []

    def run() -> None:
        own = Session(bind=session.get_bind())
        try:
            reports.append(drain.drain_backlog(own, redis_client, linger_seconds=3, max_seconds=120))
        finally:
            own.close()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while counts(session)[0] < 5:
        assert time.monotonic() < deadline, "the drain wrote nothing"
        time.sleep(0.01)
    assert redis_client.exists(intake.DRAIN_FLAG), "a lingering drain keeps the flag set"
    queue_many(session, redis_client, 7, prefix="late")
    thread.join(timeout=120)
    assert not thread.is_alive()
    (report,) = reports
    assert report.inserted == 12 and report.batches >= 2  # one run wrote the early and the late ones
    assert counts(session) == (12, 6 * 12, 12)
    assert not redis_client.exists(intake.DRAIN_FLAG), "the flag is cleared when the run ends"
    assert redis_client.xlen(intake.STREAM) == 0


def test_a_lingering_drain_yields_to_jobs_waiting_for_its_worker(
    app, session, demo, redis_client, monkeypatch
):
    """A worker serving every queue is not monopolised by a campaign's drain: the run ends after
    the batch in hand and keeps the flag set, so the waiting job runs before the next drain."""
    from app.jobs import intake as intake_jobs
    from app.jobs.queues import get_queue
    from app.jobs.worker import build_worker, current_worker

    queue_many(session, redis_client, 4, prefix="y")
    with app.app_context():
        get_queue("default").enqueue("app.jobs.intake.other_work_waiting")
        assert not intake_jobs.other_work_waiting()  # outside a worker nothing is waiting
        current_worker.set(build_worker(["intake"]))
        assert not intake_jobs.other_work_waiting()  # a worker of its own for intake never yields
        current_worker.set(build_worker(["intake", "wechat", "default", "exports"]))
        assert intake_jobs.other_work_waiting()
        report = drain.drain_backlog(
            session, redis_client, linger_seconds=3, should_yield=intake_jobs.other_work_waiting
        )
        current_worker.set(None)
    assert report.yielded and report.inserted == 4  # ended after the batch instead of lingering
    assert redis_client.exists(intake.DRAIN_FLAG), (
        "the flag stays until it expires: no drain enqueued meanwhile"
    )


def test_worker_killed_mid_batch_loses_and_doubles_nothing(
    app, session, demo, redis_client, redis_url, queue_url
):
    n = 3000
    queue_many(session, redis_client, n)
    env = _env(app, redis_url, WXSURVEY_SURVEY_DRAIN_BATCH_SIZE="10")
    from app.jobs.intake import drain_intake
    from app.jobs.queues import get_queue

    get_queue("intake", redis_lib.Redis.from_url(queue_url)).enqueue(drain_intake)
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--queues", "intake", "--burst"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    try:
        while counts(session)[0] < n // 10:
            assert worker.poll() is None, "the worker finished before it could be killed"
            assert time.monotonic() < deadline, "the worker drained nothing"
            time.sleep(0.01)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed_at = counts(session)[0]
    assert killed_at < n, "killed too late to test anything"
    # Whatever the kill interrupted (a transaction, or the gap before the ack) is pending on the
    # dead consumer or still new; the survivor takes both over.
    drain.drain_backlog(session, redis_client, consumer="survivor", claim_idle_ms=0)
    assert counts(session) == (n, 6 * n, n)
    assert redis_client.xlen(intake.STREAM) == 0


CONCURRENT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from app import create_app
    from app import intake
    from app.db import db
    from app.redis_store import redis_store
    from werkzeug.datastructures import MultiDict
    app = create_app()
    with app.app_context():
        s = app.config["SETTINGS"]
        form, dept = intake.load_form(db.session, "demo-departments", "D08")
        data = MultiDict([(f"q_{q.key}", q.options[0].key) for q in form.questions if q.kind == "single"])
        r = redis_store.client
        r.incr("test:ready")
        while not r.exists("test:go"):
            time.sleep(0.001)
        kinds = [intake.record_response(db.session, r, s, form=form, department=dept, openid=f"o-{i}",
                 data=data, form_token=intake.issue_form_token(s.app.secret_key)).kind for i in range(30)]
    print(json.dumps(kinds))
    """
)


def test_one_respondent_from_two_processes_counts_once(app, session, demo, redis_client, redis_url):
    env = _env(app, redis_url)
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_SCRIPT], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while int(redis_client.get("test:ready") or 0) < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), procs[0].stderr
        time.sleep(0.01)
    redis_client.set("test:go", "1")
    kinds = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        kinds.extend(json.loads(out))
    assert kinds.count("accepted") == 30 and kinds.count("already") == 30
    drain.drain_backlog(session, redis_client)
    assert counts(session)[0] == 30


# --- outages ---------------------------------------------------------------------------------------


def test_redis_down_writes_straight_to_sql(tmp_path, database_url, redis_client, redis_url):
    from app import create_app
    from app.db import db
    from app.org.demo import load_demo
    from tests.conftest import empty_tables

    own = tmp_path / "own-redis"
    url = ensure_embedded(own, appendfsync="always")
    app = create_app(settings_for(tmp_path, database_url, url))
    empty_tables(app.extensions["wxsurvey_db"].engine)
    client = app.test_client()
    try:
        with app.app_context():
            load_demo(db.session, tmp_path)
            db.session.commit()
            own_redis = redis_lib.Redis.from_url(url, decode_responses=True)
            assert submit(app, db.session, own_redis, "o-before").kind == "accepted"
            stop_embedded(own)
            outcome = submit(app, db.session, own_redis, "o-during")
            assert outcome.kind == "accepted" and outcome.degraded
            assert submit(app, db.session, own_redis, "o-during").kind == "already"
            assert counts(db.session)[0] == 1
            report = client.get("/readyz").get_json()
            assert report["status"] == "degraded" and report["checks"]["redis"]["ok"] is False
            ensure_embedded(own, appendfsync="always")  # back, with its append-only file
            assert own_redis.xlen(intake.STREAM) == 1
            checks = client.get("/readyz").get_json()["checks"]
            assert checks["intake"]["degraded"] is True and checks["intake"]["backlog"] == 1
            drain.drain_backlog(db.session, own_redis)
            assert counts(db.session) == (2, 12, 2)
            row = db.session.scalar(select(Response).where(Response.meta["via"].as_string() == "sql"))
            assert row is not None
    finally:
        stop_embedded(own)
        app.extensions["wxsurvey_db"].engine.dispose()
        intake.degraded.since = intake.degraded.last = None


def test_database_down_keeps_buffering_then_drains(app, session, demo, redis_client):
    loaded = intake.load_form(session, SURVEY, DEPT)  # what the page's cache holds
    for i in range(5):
        submit(app, session, redis_client, f"o-{i}")
    dead = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2}
    )
    with Session(dead) as down:
        with pytest.raises(Exception) as caught:
            drain.drain_backlog(down, redis_client)
        assert "OperationalError" in type(caught.value).__name__
        # The questionnaire keeps accepting: the form comes from the cache, the answers go to Redis.
        for i in range(5, 8):
            assert submit(app, down, redis_client, f"o-{i}", loaded=loaded).kind == "accepted"
    dead.dispose()
    status = drain.intake_status(session, redis_client)
    assert status["backlog"] == 8 and status["pending"] >= 5
    drain.drain_backlog(session, redis_client, consumer=drain.consumer_name())
    assert counts(session) == (8, 48, 8)


def test_sql_and_redis_both_down_is_a_503(app, session, demo, tmp_path):
    dead_redis = redis_lib.Redis(unix_socket_path=str(tmp_path / "nothing.sock"), decode_responses=True)
    loaded = intake.load_form(session, SURVEY, DEPT)
    dead = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2}
    )
    try:
        with Session(dead) as down, pytest.raises(Unavailable):
            submit(app, down, dead_redis, "o-x", loaded=loaded)
    finally:
        dead.dispose()
        intake.degraded.since = intake.degraded.last = None


def _form_with(*questions):
    return intake.SurveyForm(1, "s", "t", "", "open", None, None, (), questions, None)


def _question(qid, key, kind, options=(), required=True, max_choices=None, max_length=None):
    opts = tuple(intake.FormOption(qid * 10 + i, k, k) for i, k in enumerate(options))
    return intake.FormQuestion(qid, key, kind, key, required, kind == "single", max_length, max_choices, opts)


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"q_one": ["a", "b"]}, "这道题只能选择一项。"),
        ({"q_one": ["zz"]}, "所选的选项不存在，请重新选择。"),
        ({"q_one": ["  "]}, "请选择一项。"),
        ({"q_many": ["a", "a"]}, "同一个选项只能选一次。"),
        ({"q_many": ["a", "b", "c"]}, "最多选择 2 项。"),
        ({"q_many": ["a", "nope"]}, "所选的选项不存在，请重新选择。"),
        ({"q_note": ["x", "y"]}, "这道题只能填写一段文字。"),
        ({"q_note": ["长" * 11]}, "请不要超过 10 个字（现在 11 个字）。"),
    ],
)
def test_answer_rules_name_the_question(fields, error):
    form = _form_with(
        _question(1, "one", "single", "abc"),
        _question(2, "many", "multi", "abc", max_choices=2),
        _question(3, "note", "text", required=False, max_length=10),
    )
    data = {"q_one": ["a"], "q_many": ["b"], **fields}
    with pytest.raises(Invalid) as caught:
        intake.parse_answers(form, data, 500)
    assert list(caught.value.errors.values()) == [error]


def test_valid_answers_of_every_kind():
    form = _form_with(
        _question(1, "one", "single", "abc"),
        _question(2, "many", "multi", "abc", max_choices=2),
        _question(3, "note", "text", required=False, max_length=10),
    )
    got = intake.parse_answers(form, {"q_one": [" c "], "q_many": ["b", "a"], "q_note": [" 好 "]}, 500)
    assert got == [(1, 12, None), (2, 21, None), (2, 20, None), (3, None, "好")]
    assert intake.parse_answers(form, {"q_one": ["a"], "q_many": ["a"], "q_note": [""]}, 500) == [
        (1, 10, None), (2, 20, None)
    ]  # fmt: skip
    with pytest.raises(Invalid) as caught:
        intake.parse_answers(form, {"q_one": ["a"], "q_many": ["a"], "q_extra": ["1"]}, 500)
    assert "q_extra" in caught.value.errors["_form"]


def test_straightlining_compares_option_keys_of_scored_single_questions():
    form = _form_with(
        _question(1, "a", "single", ["good", "bad"]),
        _question(2, "b", "single", ["bad", "good"]),  # the same keys, other ids and order
        _question(3, "c", "single", ["good", "bad"]),
        _question(4, "many", "multi", ["good", "bad"]),  # not scored single: ignored
    )
    same = [(1, 10, None), (2, 21, None), (3, 30, None), (4, 41, None)]
    assert intake.straightlined(form, same, 3) is True
    assert intake.straightlined(form, [(1, 10, None), (2, 20, None), (3, 30, None)], 3) is False
    assert intake.straightlined(form, same[:2], 3) is False  # a scored question left out
    assert intake.straightlined(form, same, 4) is False  # fewer scored questions than the minimum
