# RQ jobs of the intake: drain the response stream into SQL (enqueued by submissions and every 30 s).
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from app.integrity.detector import Detector

log = logging.getLogger(__name__)

DRAIN_SECONDS = 30.0  # one job drains at most this long, then hands over to a fresh job
# Under steady traffic one job follows the stream (waiting up to LINGER for more) and writes a
# transaction per GATHER interval at most, instead of an RQ job and a transaction per trickle.
# A second's gathering keeps answers in SQL within about a second of their thanks page, and halves
# the drain's CPU per answer at campaign rates against 0.2 s (batches of thousands, not hundreds).
LINGER_SECONDS = 1.0
GATHER_SECONDS = 1.0


def drain_intake(max_seconds: float = DRAIN_SECONDS, shard: int = 0) -> dict[str, Any]:
    """Drain one intake shard (the periodic safety net enqueues one job per shard)."""
    from flask import current_app

    from app.db import db
    from app.intake.drain import drain_backlog
    from app.intake.shards import LEGACY_STREAM
    from app.redis_store import redis_store

    settings = current_app.config["SETTINGS"]
    redis = redis_store.client
    if shard == 0 and redis.exists(LEGACY_STREAM):  # entries queued before shards existed
        drain_backlog(db.session, redis, batch_size=settings.survey.drain_batch_size, stream=LEGACY_STREAM)
    report = drain_backlog(
        db.session,
        redis,
        batch_size=settings.survey.drain_batch_size,
        max_seconds=max_seconds,
        linger_seconds=LINGER_SECONDS,
        gather_seconds=GATHER_SECONDS,
        should_yield=other_work_waiting,
        detector=integrity_detector(settings),
        shard=shard,
    )
    if report.seconds >= max_seconds and not report.yielded:
        # Stopped by the clock while entries were still coming: a follow-up job takes over (it sees
        # everything this one committed, and lingers for nothing if the stream fell quiet).
        request_drain(shard)
    return report.as_dict()


def integrity_detector(settings):
    """The process's stuffing detector (it caches departments' opening hours), or None when off."""
    from app.integrity.detector import Detector

    global _detector
    if not settings.integrity.enabled:
        return None
    if _detector is None or _detector.threshold != settings.integrity.threshold:
        _detector = Detector(settings.integrity.threshold)
    return _detector


_detector: Detector | None = None


def other_work_waiting() -> bool:
    """Jobs waiting on the other queues of the worker running this drain: it should let the worker
    get to them. Outside a worker (a test calling the job), nothing is waiting."""
    from app.jobs.worker import current_worker

    worker = current_worker.get()
    return worker is not None and worker.other_work_waiting()


def request_drain(shard: int = 0) -> None:
    """Enqueue a drain job: called by the submission paths when record_response says a drain is
    wanted, and by a drain stopped by its clock (needs an app context for the RQ connection)."""
    from app.jobs.queues import enqueue

    try:
        enqueue("intake", drain_intake, DRAIN_SECONDS, shard)
    except RedisError:
        log.warning("intake: could not enqueue a drain job; the periodic drain will pick the backlog up")
