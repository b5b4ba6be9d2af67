"""RQ queues by name and the one helper every caller enqueues through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq import Queue
from rq.job import Job

from app.redis_store import redis_store

# Listed in the order a worker serves them: intake first, so answers never wait behind exports.
QUEUES = ("intake", "wechat", "default", "exports")


def get_queue(name: str, connection=None) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=connection or redis_store.raw)


def enqueue(
    queue_name: str, func: Callable[..., Any], *args: Any, job_id: str | None = None, **options: Any
) -> Job:
    """Enqueue func(*args) by reference; jobs take ids, never ORM objects. Commit before calling."""
    return get_queue(queue_name).enqueue(func, *args, job_id=job_id, **options)
