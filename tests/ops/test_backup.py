"""`wxsurvey backup` mid-campaign and `wxsurvey restore` elsewhere, on SQLite and PostgreSQL: the
restored copy, once drained, holds exactly the answers of the original once drained."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from app import intake
from app.intake import drain
from app.models import Answer, Response, TallyRow
from app.redis_store import ensure_embedded, stop_embedded
from tests.conftest import PG_URL, run_cli

SURVEY, DEPT = "demo-departments", "D08"


def answer(app, session, redis, openid: str, choice: int):
    settings = app.config["SETTINGS"]
    form, dept = intake.load_form(session, SURVEY, DEPT)
    data = MultiDict()
    for q in form.questions:
        if q.kind == "single":
            data.add(f"q_{q.key}", q.options[choice % len(q.options)].key)
    token = intake.issue_form_token(settings.app.secret_key, time.time() - 30)
    outcome = intake.record_response(
        session, redis, settings, form=form, department=dept, openid=openid, data=data, form_token=token
    )
    assert outcome.kind == "accepted"


def counts(session: Session) -> tuple[int, int, int]:
    session.rollback()
    return (
        session.scalar(select(func.count()).select_from(Response)),
        session.scalar(select(func.count()).select_from(Answer)),
        session.scalar(select(func.coalesce(func.sum(TallyRow.count), 0)).where(TallyRow.question_id == 0)),
    )


def tallies(env: dict[str, str]) -> dict:
    result = run_cli("tallies", "--survey", SURVEY, "--by", "question,option", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def elsewhere(backend, tmp_path, database_url):
    """An empty database (never migrated: restore brings the schema) and an empty Redis of their own."""
    var = tmp_path / "elsewhere"
    redis_url = ensure_embedded(var / "redis", appendfsync="no")
    if backend == "sqlite":
        url = f"sqlite:///{var / 'restored.db'}"
        yield url, redis_url
    else:
        # A new database; the dump recreates the source's schema there, so search it.
        name = f"wxrestore_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        schema = make_url(database_url).query["options"].split("=", 1)[1]
        url = (
            make_url(PG_URL).set(database=name).update_query_dict({"options": f"-csearch_path={schema}"})
        ).render_as_string(hide_password=False)
        yield url, redis_url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
    stop_embedded(var / "redis")


def test_backup_mid_campaign_restores_every_answer(app, session, demo, redis_client, cli_env, tmp_path,
                                                   elsewhere):  # fmt: skip
    # Mid-campaign: 30 answers drained into SQL, 20 still queued, 5 of those handed to a drain
    # that has not acknowledged them yet (pending), one malformed entry in the dead letters.
    for i in range(30):
        answer(app, session, redis_client, f"o-drained-{i}", i)
    drain.drain_backlog(session, redis_client)
    for i in range(20):
        answer(app, session, redis_client, f"o-queued-{i}", i)
    drain.ensure_group(redis_client)
    assert len(drain.read_batch(redis_client, "a-worker-that-died", 5)) == 5
    assert counts(session)[0] == 30 and redis_client.xlen(intake.STREAM) == 20

    out = tmp_path / "nightly.wxbackup"
    result = run_cli("backup", "--out", str(out), env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "20 queued answers, 50 marks" in result.stdout
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    # The campaign goes on at the original after the backup: its answers are not in the backup.
    url, redis_url = elsewhere
    target_env = {**cli_env, "WXSURVEY_DATABASE_URL": url, "WXSURVEY_REDIS_URL": redis_url}
    result = run_cli("restore", str(out), env=target_env)
    assert result.returncode == 0, result.stderr
    assert "20 queued answers (a drain job is waiting for the workers)" in result.stdout

    engine = create_engine(url)
    target_redis = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert target_redis.xlen(intake.STREAM) == 20
        from rq import Queue

        assert Queue("intake", connection=redis_lib.Redis.from_url(redis_url)).count == 1  # a drain, waiting
        with Session(engine) as target:
            assert counts(target)[0] == 30
            report = drain.drain_backlog(target, target_redis)
            assert report.inserted == 20
            restored = counts(target)
        drain.drain_backlog(session, redis_client, consumer="heir", claim_idle_ms=0)
        assert restored == counts(session) == (50, 50 * 6, 50)
        assert len(list(target_redis.scan_iter("wx:done:*"))) == 50  # one per person still holds there
        verify = run_cli("tallies", "verify", env=target_env)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert tallies(target_env)["rows"] == tallies(cli_env)["rows"]
    finally:
        target_redis.close()
        engine.dispose()


def test_restore_refuses_a_database_or_redis_in_use(app, session, demo, redis_client, cli_env, tmp_path):
    out = tmp_path / "b.wxbackup"
    assert run_cli("backup", "--out", str(out), env=cli_env).returncode == 0
    result = run_cli("restore", str(out), env=cli_env)  # onto the live one: departments exist
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wxsurvey: error: the database is not empty") and "Traceback" not in result.stderr
    assert counts(session)[0] == 0 and len(demo.survey_slug) > 0  # nothing touched


def test_restore_of_something_else_is_a_one_line_error(app, cli_env, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    result = run_cli("restore", str(junk), env=cli_env)
    assert result.returncode == 1
    assert "not a wxsurvey backup file" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
