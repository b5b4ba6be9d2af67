"""`wxsurvey worker` (one RQ worker on the named queues, with RQ's scheduler) and
`wxsurvey worker --cron` (the cron scheduler of the periodic jobs listed in app/schedule.py)."""

from __future__ import annotations

import importlib
import logging
import os
import socket

import click
from flask import current_app
from flask.cli import with_appcontext

from app.queues import QUEUES


def register(cli: click.Group) -> None:
    cli.add_command(worker)


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def run_worker(queues: list[str], burst: bool = False, name: str | None = None) -> bool:
    """Serve the queues until stopped (or, with burst, until they are empty). In an app context."""
    from sqlalchemy.orm import configure_mappers

    from app.jobs.worker import build_worker

    configure_mappers()  # once, before any job: not per job
    logging.getLogger("rq").setLevel(logging.INFO)
    return build_worker(queues, name).work(burst=burst, with_scheduler=True, logging_level="INFO")


def run_cron() -> None:
    """Register every periodic job (stable names: a restart never duplicates one) and run."""
    from rq.cron import CronScheduler

    from app.redis_store import redis_store
    from app.schedule import periodic_jobs

    logging.getLogger("rq").setLevel(logging.INFO)
    scheduler = CronScheduler(
        connection=redis_store.raw, name=f"wxsurvey-cron-{socket.gethostname()}-{os.getpid()}"
    )
    for job in periodic_jobs(current_app.config["SETTINGS"]):
        scheduler.register(
            _resolve(job.func), job.queue, args=job.args, interval=job.interval, cron=job.cron, name=job.name
        )
    scheduler.start()


def parse_queues(text: str) -> list[str]:
    queues = [q.strip() for q in text.split(",") if q.strip()]
    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        raise click.UsageError(
            f"unknown queue(s) {', '.join(unknown) or '(none)'}; known: {', '.join(QUEUES)}"
        )
    return queues


@click.command()
@click.option("--queues", default=",".join(QUEUES), show_default=True,
              help="Comma-separated queue names, in priority order.")  # fmt: skip
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--cron", is_flag=True, help="Run the cron scheduler of the periodic jobs instead.")
@click.option("--name", default=None, help="Worker name (default: host and pid).")
@with_appcontext
def worker(queues: str, burst: bool, cron: bool, name: str | None) -> None:
    """Run one RQ worker (intake first), or the cron scheduler with --cron."""
    if cron:
        run_cron()
        return
    run_worker(parse_queues(queues), burst, name)
