# RQ jobs of the intake: drain the response stream into SQL (enqueued by submissions and every 30 s).
from __future__ import annotations

from typing import Any

DRAIN_SECONDS = 30.0  # one job drains at most this long, then hands over to a fresh job


def drain_intake(max_seconds: float = DRAIN_SECONDS) -> dict[str, Any]:
    from flask import current_app

    from app.db import db
    from app.drain import backlog_left, drain_backlog
    from app.intake import request_drain
    from app.redis_store import redis_store

    settings = current_app.config["SETTINGS"]
    report = drain_backlog(
        db.session,
        redis_store.client,
        batch_size=settings.survey.drain_batch_size,
        max_seconds=max_seconds,
    )
    if report.seconds >= max_seconds and backlog_left(redis_store.client):
        request_drain()  # committed already: the follow-up job sees everything this one wrote
    return report.as_dict()
