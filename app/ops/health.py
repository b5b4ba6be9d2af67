"""Liveness and readiness checks: the database, Redis and how far the queues lag."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.jobs.queues import QUEUES


def domain_checks(settings=None) -> dict[str, Callable[[Session, Redis], dict[str, Any]]]:
    """The readiness checks of the domains, in one list: name -> fn(session, redis) -> dict."""
    from app.intake.drain import intake_status

    shards = settings.survey.intake_shards if settings is not None else 1
    return {"intake": partial(intake_status, shards=shards)}


def check_database(session: Session) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        session.execute(text("SELECT 1"))
        session.rollback()
    except SQLAlchemyError as exc:
        session.rollback()
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def check_redis(client: Redis) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def queue_lag(raw: Redis) -> dict[str, Any]:
    """Jobs waiting per RQ queue and the age in seconds of the oldest one."""
    from rq import Queue

    result: dict[str, Any] = {}
    now = datetime.now(UTC)
    for name in QUEUES:
        queue = Queue(name, connection=raw)
        count = queue.count
        oldest = None
        if count:
            jobs = queue.get_jobs(0, 1)
            if jobs and jobs[0].enqueued_at:
                enqueued = jobs[0].enqueued_at
                if enqueued.tzinfo is None:
                    enqueued = enqueued.replace(tzinfo=UTC)
                oldest = round((now - enqueued).total_seconds(), 1)
        result[name] = {"waiting": count, "oldest_seconds": oldest}
    return result


def readiness(session: Session, client: Redis, raw: Redis, settings=None) -> tuple[dict[str, Any], int]:
    """Return the report and its HTTP status: 503 only when answers can be accepted nowhere."""
    checks: dict[str, Any] = {"database": check_database(session), "redis": check_redis(client)}
    if checks["redis"]["ok"]:
        try:
            checks["queues"] = queue_lag(raw)
        except (RedisError, OSError) as exc:
            checks["queues"] = {"ok": False, "error": type(exc).__name__}
        for name, check in domain_checks(settings).items():
            try:
                checks[name] = check(session, client)
            except (RedisError, SQLAlchemyError, OSError) as exc:
                checks[name] = {"ok": False, "error": type(exc).__name__}
    db_ok, redis_ok = checks["database"]["ok"], checks["redis"]["ok"]
    degraded = not (db_ok and redis_ok) or any(
        isinstance(v, dict) and v.get("ok") is False for v in checks.values()
    )
    status = "ok" if not degraded else "degraded"
    if not db_ok and not redis_ok:
        status = "down"
    return {"status": status, "checks": checks}, (503 if status == "down" else 200)
