"""Periodic work, declared in one list with stable names so a restart never duplicates a schedule.

Each entry: (name, dotted function path, queue, interval seconds or None, cron expression or None).
Scheduled exports from the config are added by app.exports when that module declares them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str
    queue: str
    interval: int | None = None
    cron: str | None = None
    args: tuple[Any, ...] = ()


# Providers return more Periodic entries from the settings (e.g. [[exports.schedules]]).
PROVIDERS: list[Callable[[Any], list[Periodic]]] = []
PERIODIC: list[Periodic] = [
    # The shared WeChat access token renewed ahead of its expiry (app/wechat_api.py, refresh_ahead).
    Periodic("wechat-token", "app.jobs.wechat.refresh_access_token", "wechat", interval=60),
]


def periodic_jobs(settings) -> list[Periodic]:
    import app.exports  # noqa: F401  (declares the [[exports.schedules]] provider)

    jobs = list(PERIODIC)
    for provider in PROVIDERS:
        jobs.extend(provider(settings))
    names = [job.name for job in jobs]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"duplicate periodic job names: {', '.join(sorted(duplicates))}")
    return jobs
