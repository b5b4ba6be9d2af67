"""Scheduled exports: config checks, files with a SHA-256 manifest, one run per slot, signed pushes
retried with backoff, and the whole thing driven by RQ's real cron scheduler and a worker."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app
from app.config import ConfigError, load_settings
from app.models import ExportRun
from app.schedule import periodic_jobs
from app.tally.exports import get_schedule, push_run, run_export
from app.tally.report import tally_report
from tests.conftest import empty_tables, settings_for
from tests.factories import hand_made_responses

ROOT = Path(__file__).resolve().parents[2]
SECRET = "push-secret-for-tests"


class PushTarget:
    """A loopback HTTP server that answers 503 to the first `failures` pushes, then 200."""

    def __init__(self, failures: int = 0) -> None:
        self.failures, self.received, self.lock = failures, [], threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with target.lock:
                    target.received.append((dict(self.headers), body))
                    failing = len(target.received) <= target.failures
                self.send_response(503 if failing else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/push"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_target():
    target = PushTarget(failures=2)
    yield target
    target.close()


def schedule_entry(**changes):
    return {"name": "nightly", "cron": "0 2 * * *", "survey": "demo-departments", "group_by": "department",
            "format": ["csv", "json"], **changes}  # fmt: skip


@pytest.fixture
def export_app(tmp_path, database_url, redis_url, redis_client, push_target):
    def make(**entry):
        settings = settings_for(
            tmp_path, database_url, redis_url,
            exports={"dir": str(tmp_path / "exports"), "push_secret": SECRET, "push_backoff": 1,
                     "push_retries": 3, "schedules": [schedule_entry(**entry)]},
        )  # fmt: skip
        app = create_app(settings)
        empty_tables(app.extensions["wxsurvey_db"].engine)
        return app

    return make


def empty_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"[app]\nvar_dir = {json.dumps(str(tmp_path / 'var'))}\n")
    return path


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "Bad Name"}, "exports.schedules[0].name"),
        ({"cron": "every day"}, "exports.schedules[0].cron"),
        ({"interval": 60}, "exactly one of cron"),
        ({"cron": None, "interval": 0}, "exports.schedules[0].interval"),
        ({"group_by": "department,colour"}, "exports.schedules[0].group_by: unknown dimension 'colour'"),
        ({"format": "pdf"}, "exports.schedules[0].format"),
        ({"destination": "ftp://x"}, "exports.schedules[0].destination"),
        ({"period": "2024-13"}, "exports.schedules[0].period"),
        ({"colour": "red"}, "exports.schedules[0].colour: unknown key"),
        ({"survey": ""}, "exports.schedules[0].survey"),
    ],
)
def test_bad_schedules_are_one_line_config_errors(tmp_path, entry, message):
    entry = {k: v for k, v in schedule_entry(**entry).items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load_settings(empty_config(tmp_path), environ={}, overrides={"exports": {"schedules": [entry]}})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_destination_needs_a_push_secret(tmp_path):
    with pytest.raises(ConfigError, match="exports.push_secret"):
        entry = schedule_entry(destination="http://x/")
        load_settings(empty_config(tmp_path), environ={}, overrides={"exports": {"schedules": [entry]}})


def test_schedules_become_periodic_jobs(export_app):
    app = export_app(cron=None, interval=5)
    jobs = {j.name: j for j in periodic_jobs(app.config["SETTINGS"])}
    job = jobs["export:nightly"]
    assert (job.func, job.queue, job.interval, job.cron, job.args) == (
        "app.jobs.exports.run_scheduled_export", "exports", 5, None, ("nightly",),
    )  # fmt: skip


def test_run_writes_files_and_manifest_once_per_slot(export_app):
    app = export_app()
    settings = app.config["SETTINGS"]
    with app.app_context():
        from app.db import db
        from app.org.demo import load_demo

        load_demo(db.session, settings.var_dir)
        hand_made_responses(db.session)
        outcome = run_export(db.session, settings, "nightly", slot="2026-01-02T02:00:00Z")
        assert outcome.run.status == "ok" and outcome.run.attempts == 0
        again = run_export(db.session, settings, "nightly", slot="2026-01-02T02:00:00Z")
        assert again.duplicate
        assert db.session.scalar(select(func.count()).select_from(ExportRun)) == 1
        result = tally_report(db.session, "demo-departments", group_by="department")
        expected = {r["department"]: r["count"] for r in result.rows}

    directory = Path(settings.exports.dir) / "nightly"
    manifest_file = next(directory.glob("nightly-*.manifest.json"))
    manifest = json.loads(manifest_file.read_text())
    assert manifest["responses"] == 5 and {f["format"] for f in manifest["files"]} == {"csv", "json"}
    for entry in manifest["files"]:
        data = (directory / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and entry["rows"] == 3
    csv_entry = next(f for f in manifest["files"] if f["format"] == "csv")
    rows = csv.DictReader(io.StringIO((directory / csv_entry["file"]).read_text("utf-8-sig")))
    assert {r["department"]: int(r["count"]) for r in rows} == expected


def test_push_is_signed_and_retried_with_backoff(export_app, push_target):
    app = export_app(destination=push_target.url)
    settings = app.config["SETTINGS"]
    with app.app_context():
        from app.db import db
        from app.org.demo import load_demo

        load_demo(db.session, settings.var_dir)
        outcome = run_export(db.session, settings, "nightly", slot="s1")
        assert outcome.run.status == "retrying"  # the push is still to come
        delays = []
        while (delay := push_run(db.session, settings, outcome.run.id)) is not None:
            delays.append(delay)
        run = db.session.get(ExportRun, outcome.run.id)
        assert (run.status, run.attempts, run.error) == ("ok", 3, None)
        assert delays == [1, 2]  # doubling backoff after each of the two 503s

        push_target.failures = 100
        failing = run_export(db.session, settings, "nightly", slot="s2")
        while push_run(db.session, settings, failing.run.id) is not None:
            pass
        run = db.session.get(ExportRun, failing.run.id)
        assert (run.status, run.attempts) == ("failed", 3) and "503" in run.error

    headers, body = push_target.received[2]
    expected = hmac.new(
        SECRET.encode(), headers["X-Wxsurvey-Timestamp"].encode() + b"." + body, hashlib.sha256
    )
    assert headers["X-Wxsurvey-Signature"] == "sha256=" + expected.hexdigest()
    document = json.loads(body)
    assert (document["name"], document["slot"]) == ("nightly", "s1")
    json_file = next(f for f in document["files"] if f["format"] == "json")
    assert json.loads(base64.b64decode(json_file["content_base64"]))["survey"] == "demo-departments"


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_real_cron_scheduler_and_worker_run_each_slot_once(
    tmp_path, database_url, redis_url, redis_client, export_app, push_target
):
    """Two cron schedulers (a restart that overlaps the old one) and a worker, all real processes."""
    push_target.failures = 1  # the first push fails and is retried by the worker's scheduler
    interval = 3
    app = export_app(cron=None, interval=interval, destination=push_target.url)
    settings = app.config["SETTINGS"]
    with app.app_context():
        from app.db import db
        from app.org.demo import load_demo

        load_demo(db.session, settings.var_dir)
        hand_made_responses(db.session)
    assert get_schedule(settings, "nightly").interval == interval
    config = tmp_path / "worker.toml"
    config.write_text(
        f"[app]\nvar_dir = {json.dumps(str(tmp_path / 'var'))}\n"
        f"[database]\nurl = {json.dumps(database_url)}\n[redis]\nurl = {json.dumps(redis_url)}\n"
        f"[exports]\ndir = {json.dumps(settings.exports.dir)}\npush_secret = {json.dumps(SECRET)}\n"
        "push_backoff = 1\npush_retries = 3\n"
        "[[exports.schedules]]\n"
        + "".join(
            f"{k} = {json.dumps(v)}\n"
            for k, v in {
                "name": "nightly",
                "interval": interval,
                "survey": "demo-departments",
                "group_by": "department",
                "format": ["csv", "json"],
                "destination": push_target.url,
            }.items()
        )  # fmt: skip
    )
    env = {"PATH": "/usr/bin:/bin", "WXSURVEY_CONFIG": str(config), "PYTHONPATH": str(ROOT)}

    def start(*args):
        return subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *args], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def runs():
        with app.app_context():
            from app.db import db

            db.session.rollback()
            return list(db.session.scalars(select(ExportRun).order_by(ExportRun.slot)))

    from rq.cron import get_cron_job_ids
    from rq.job import Job

    def enqueued():
        return get_cron_job_ids("export:nightly", app.extensions["wxsurvey_redis"]["raw"])

    def skipped():
        """Cron-enqueued jobs that finished as a duplicate: a slot the other scheduler had run."""
        jobs = Job.fetch_many(enqueued(), connection=app.extensions["wxsurvey_redis"]["raw"])
        return [j for j in jobs if j is not None and str(j.return_value() or "").startswith("duplicate ")]

    processes = [start("--queues", "exports"), start("--cron")]
    try:
        wait_for(lambda: [r for r in runs() if r.status == "ok"], 40, "the first scheduled run to be pushed")
        processes.append(start("--cron"))  # the restarted scheduler, while the old one still runs
        wait_for(
            lambda: len([r for r in runs() if r.status == "ok"]) >= 3 and skipped(),
            60,
            "three pushed slots, and a slot enqueued by both schedulers whose second job was skipped",
        )
    finally:
        # The schedulers first, so that no new slot is enqueued; then the worker, which finishes
        # the export in hand before it exits (RQ's warm shutdown: slow on a loaded machine).
        for group in (processes[1:], processes[:1]):
            for process in group:
                process.terminate()
            for process in group:
                process.wait(timeout=90)

    done = runs()
    slots = [r.slot for r in done]
    assert len(slots) == len(set(slots))
    assert all(datetime.fromisoformat(r.slot).timestamp() % interval == 0 for r in done)  # aligned windows
    assert len(enqueued()) > len(done), "both schedulers enqueued, yet each slot ran once"
    assert {j.return_value().split()[1] for j in skipped()} <= set(slots)  # skipped = a slot already run
    manifests = list((Path(settings.exports.dir) / "nightly").glob("*.manifest.json"))
    assert len(manifests) == len(done)
    pushed = {json.loads(body)["slot"] for headers, body in push_target.received}
    assert {r.slot for r in done if r.status == "ok"} <= pushed
    first = done[0]
    assert first.attempts == 2  # the 503, then the retry the worker's scheduler ran after the backoff
