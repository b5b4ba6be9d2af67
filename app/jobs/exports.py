"""RQ jobs of scheduled exports: run one schedule for the slot it was enqueued in; push with backoff."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from rq import get_current_job

from app.db import db
from app.metrics import EXPORTS
from app.models import ExportRun, utcnow
from app.tally import exports

log = logging.getLogger(__name__)


def run_scheduled_export(name: str) -> str:
    """Enqueued by the cron scheduler: the slot comes from the enqueue time, so a late worker or a
    second scheduler lands on the same slot and the run happens once."""
    settings = current_app.config["SETTINGS"]
    job = get_current_job()
    enqueued_at = job.enqueued_at if job is not None and job.enqueued_at else utcnow()
    schedule = exports.get_schedule(settings, name)
    try:
        outcome = exports.run_export(db.session, settings, name, slot=schedule.slot(enqueued_at))
    except Exception:
        EXPORTS.labels("failed").inc()
        raise
    if outcome.duplicate:
        EXPORTS.labels("duplicate").inc()
        log.info("export %s: slot %s already run, skipped", name, outcome.slot)
        return f"duplicate {outcome.slot}"
    EXPORTS.labels("written").inc()
    if schedule.destination and outcome.run is not None:
        push_export(outcome.run.id)
    return f"ran {outcome.slot}"


def push_export(run_id: int) -> str:
    """One push attempt; on failure, the next one is scheduled after a doubling delay."""
    settings = current_app.config["SETTINGS"]
    delay = exports.push_run(db.session, settings, run_id)
    run = db.session.get(ExportRun, run_id)
    if run is not None and run.attempts:
        EXPORTS.labels({"ok": "pushed", "failed": "push_failed"}.get(run.status, "push_retry")).inc()
    if delay is None:
        return "done"
    from app.queues import get_queue

    get_queue("exports").enqueue_in(timedelta(seconds=delay), push_export, run_id)
    return f"retry in {delay}s"
