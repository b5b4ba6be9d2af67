# RQ jobs of the intake: drain the response stream into SQL (enqueued by submissions and every 30 s).
from __future__ import annotations

from typing import Any

DRAIN_SECONDS = 30.0  # one job drains at most this long, then hands over to a fresh job
# Under steady traffic one job follows the stream (waiting up to LINGER for more) and writes a
# transaction per GATHER interval at most, instead of an RQ job and a transaction per trickle.
LINGER_SECONDS = 1.0
GATHER_SECONDS = 0.2


def drain_intake(max_seconds: float = DRAIN_SECONDS) -> dict[str, Any]:
    from flask import current_app

    from app.db import db
    from app.drain import drain_backlog
    from app.intake import request_drain
    from app.redis_store import redis_store

    settings = current_app.config["SETTINGS"]
    report = drain_backlog(
        db.session,
        redis_store.client,
        batch_size=settings.survey.drain_batch_size,
        max_seconds=max_seconds,
        linger_seconds=LINGER_SECONDS,
        gather_seconds=GATHER_SECONDS,
    )
    if report.seconds >= max_seconds:
        # Stopped by the clock while entries were still coming: a follow-up job takes over (it sees
        # everything this one committed, and lingers for nothing if the stream fell quiet).
        request_drain()
    return report.as_dict()
