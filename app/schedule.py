"""Periodic work, declared in one list with stable names so a restart never duplicates a schedule
(the cron scheduler of worker.py registers exactly these, and nothing registers itself by import).

Each entry: (name, dotted function path, queue, interval seconds or None, cron expression or None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.config import Settings


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str
    queue: str
    interval: int | None = None
    cron: str | None = None
    args: tuple[Any, ...] = ()


# Always on: the drain's safety net (submissions enqueue a drain when a backlog appears; this
# catches whatever they could not, e.g. after a worker crash or while Redis was down), one per
# intake shard: "intake-drain" for shard 0 (its name from before shards), "intake-drain:K" after.
def intake_drains(settings: Settings) -> list[Periodic]:
    from app.intake.shards import all_shards
    from app.jobs.intake import DRAIN_SECONDS

    return [
        Periodic(
            "intake-drain" + (f":{k}" if k else ""),
            "app.jobs.intake.drain_intake",
            "intake",
            interval=30,
            args=(DRAIN_SECONDS, k),
        )  # fmt: skip
        for k in all_shards(settings.survey.intake_shards)
    ]


# Always on as well: the shared WeChat access token renewed ahead of its expiry (app/wechat_api.py).
FIXED: tuple[Periodic, ...] = (
    # The 差评 follow-up loop: overdue cases go up a level; contacts are erased when they expire.
    Periodic("cases-escalate", "app.jobs.cases.escalate_cases", "default", interval=600),
    Periodic("cases-expire-contacts", "app.jobs.cases.erase_expired_contacts", "default", interval=3600),
    Periodic("integrity-leavers", "app.jobs.integrity.sweep_leavers", "intake", interval=60),
    Periodic("wechat-token", "app.jobs.wechat.refresh_access_token", "wechat", interval=60),
)


def periodic_jobs(settings: Settings) -> list[Periodic]:
    """Every periodic job of this configuration: the intake drains, the fixed ones, then one per export
    schedule."""
    from app.tally.exports import schedules

    jobs = intake_drains(settings) + list(FIXED)
    jobs.extend(
        Periodic(
            f"export:{s.name}",
            "app.jobs.exports.run_scheduled_export",
            "exports",
            interval=s.interval,
            cron=s.cron,
            args=(s.name,),
        )  # fmt: skip
        for s in schedules(settings).values()
    )
    names = [job.name for job in jobs]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"duplicate periodic job names: {', '.join(sorted(duplicates))}")
    return jobs
