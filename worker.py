"""The RQ worker entry point: builds the app, pushes its context, serves the named queues.

`python worker.py` runs a worker on every queue (intake first) with RQ's scheduler;
`python worker.py --cron` runs the cron scheduler for the periodic jobs of app/schedule.py.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def run_worker(queues: list[str], burst: bool, name: str | None) -> bool:
    from rq.worker import SimpleWorker

    from app.jobs import intake as intake_jobs
    from app.queues import get_queue
    from app.redis_store import redis_store

    intake_jobs.served_queues = tuple(queues)  # a lingering drain yields to the other queues' jobs

    # SimpleWorker runs jobs in this process: the app context, engine pool and Redis
    # connections are reused by every job instead of being rebuilt after a fork.
    worker = SimpleWorker(
        [get_queue(q) for q in queues],
        connection=redis_store.raw,
        name=name or f"wxsurvey-{socket.gethostname()}-{os.getpid()}",
    )
    return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def run_cron(settings) -> None:
    from rq.cron import CronScheduler

    from app.redis_store import redis_store
    from app.schedule import periodic_jobs

    scheduler = CronScheduler(
        connection=redis_store.raw, name=f"wxsurvey-cron-{socket.gethostname()}-{os.getpid()}"
    )
    for job in periodic_jobs(settings):
        scheduler.register(
            _resolve(job.func), job.queue, args=job.args, interval=job.interval, cron=job.cron, name=job.name
        )
    scheduler.start()


def main(argv: list[str] | None = None) -> int:
    from app.queues import QUEUES

    parser = argparse.ArgumentParser(prog="worker.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--queues", default=",".join(QUEUES), help="comma-separated queue names, in priority order"
    )
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--cron", action="store_true", help="run the cron scheduler instead of a worker")
    parser.add_argument("--name", help="worker name (default: host and pid)")
    args = parser.parse_args(argv)

    from sqlalchemy.orm import configure_mappers

    from app import create_app
    from app.config import ConfigError

    try:
        app = create_app()
    except ConfigError as exc:
        print(f"worker.py: error: {exc}", file=sys.stderr)
        return 1
    app.app_context().push()
    configure_mappers()
    logging.getLogger("rq").setLevel(logging.INFO)
    if args.cron:
        run_cron(app.config["SETTINGS"])
        return 0
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = [q for q in queues if q not in QUEUES]
    if unknown:
        print(
            f"worker.py: error: unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}",
            file=sys.stderr,
        )
        return 2
    run_worker(queues, args.burst, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
