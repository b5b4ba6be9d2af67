"""An upgrade with answers still queued: the version before this work (git OLD_VERSION) takes
answers into Redis and enqueues its drain job; then this version migrates the database
(`wxsurvey init`) and its worker drains them: every answer stored once, tallies verified."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from app.redis_store import ensure_embedded, stop_embedded
from tests.conftest import ROOT, run_cli

OLD_VERSION = "d2def7a"  # main before deploy/, metrics and backups (issue 16)
N = 40

OLD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from werkzeug.datastructures import MultiDict
    from app import create_app, intake
    from app.db import db
    from app.demo import load_demo
    from app.migrate import upgrade
    from app.redis_store import redis_store

    app = create_app()
    with app.app_context():
        upgrade(db.engine)
        load_demo(db.session, app.config["SETTINGS"].var_dir)
        db.session.commit()
        settings = app.config["SETTINGS"]
        form, dept = intake.load_form(db.session, "demo-departments", "D08")
        for i in range(int(sys.argv[1])):
            data = MultiDict()
            for q in form.questions:
                if q.kind == "single":
                    data.add(f"q_{q.key}", q.options[i % len(q.options)].key)
            token = intake.issue_form_token(settings.app.secret_key, time.time() - 30)
            outcome = intake.record_response(db.session, redis_store.client, settings, form=form,
                                             department=dept, openid=f"o-{i}", data=data, form_token=token)
            assert outcome.kind == "accepted", outcome
        print("queued", redis_store.client.xlen(intake.STREAM))
    """
)


@pytest.fixture
def old_source(tmp_path):
    target = tmp_path / "old"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", OLD_VERSION], capture_output=True, timeout=60
    )
    if archive.returncode != 0:
        pytest.skip(f"git archive {OLD_VERSION} unavailable here: {archive.stderr.decode().strip()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True, timeout=60)
    return target


def test_answers_queued_by_the_old_version_drain_under_the_new_one(old_source, tmp_path):
    redis_url = ensure_embedded(tmp_path / "redis", appendfsync="no")
    settings_env = {
        "WXSURVEY_DATABASE_URL": f"sqlite:///{tmp_path / 'wx.db'}",
        "WXSURVEY_REDIS_URL": redis_url,
        "WXSURVEY_APP_VAR_DIR": str(tmp_path / "var"),  # the same dev secrets for both versions
        "WXSURVEY_CONFIG": str(tmp_path / "config.toml"),
        "WXSURVEY_APP_LOG_LEVEL": "WARNING",
    }
    (tmp_path / "config.toml").write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")}
    try:
        old = subprocess.run(
            [sys.executable, "-c", OLD_SCRIPT, str(N)],
            cwd=old_source,
            env={**base, **settings_env, "PYTHONPATH": str(old_source)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert old.returncode == 0, old.stderr[-3000:]
        assert old.stdout.split() == ["queued", str(N)]

        # The upgrade: migrations first, then the new workers (rolling restart).
        init = run_cli("init", env=settings_env)
        assert init.returncode == 0, init.stderr
        worker = subprocess.run(
            [sys.executable, str(ROOT / "worker.py"), "--burst", "--queues", "intake"],
            cwd=ROOT,
            env={**base, **settings_env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert worker.returncode == 0, worker.stderr[-3000:]
        with sqlite3.connect(tmp_path / "wx.db") as conn:
            # the drain job the old version enqueued ran under the new code and took every answer
            assert conn.execute("SELECT count(*) FROM responses").fetchone()[0] == N
            assert conn.execute("SELECT count(DISTINCT respondent_key) FROM responses").fetchone()[0] == N
        verify = run_cli("tallies", "verify", env=settings_env)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        stop_embedded(tmp_path / "redis")
