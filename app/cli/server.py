"""`wxsurvey run` (web + worker + scheduler, as `make run` uses it), `serve` (web only), `worker`."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.supervisor import Child, Supervisor, web_argv, worker_argv

if TYPE_CHECKING:
    from app.config import Settings


def register(cli: click.Group) -> None:
    cli.add_command(run)
    cli.add_command(serve)


def _links(settings: Settings) -> list[str]:
    from app.org.demo import ADMIN_USERNAME, DEPARTMENT_SURVEY

    base = settings.app.base_url
    password_file = settings.var_dir / "demo-admin-password.txt"
    password = (
        password_file.read_text().strip() if password_file.exists() else "(set with wxsurvey admin create)"
    )
    lines = [
        f"wxsurvey is running at {base}",
        f"  console:       {base}/console/   user {ADMIN_USERNAME}  password {password}",
        f"  questionnaire: {base}/q/{DEPARTMENT_SURVEY}/D08",
    ]
    if not settings.is_production and settings.wechat.simulator:
        lines.append(f"  simulator:     {base}/dev/phone")
    lines.append("Press Ctrl-C to stop.")
    return lines


@click.command()
@with_appcontext
@click.option("--host", help="Bind address (default: app.host).")
@click.option("--port", type=int, help="Port (default: app.port).")
def run(host: str | None, port: int | None) -> None:
    """Run web, worker and scheduler together until Ctrl-C."""
    settings = current_app.config["SETTINGS"]
    host, port = host or settings.app.host, port or settings.app.port
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if "PROMETHEUS_MULTIPROC_DIR" not in env:
        # /metrics adds up the counters of web workers, worker and scheduler (app/metrics.py)
        metrics_dir = settings.var_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if not settings.redis.url:
        # Children connect to the embedded server this process started rather than racing to start one.
        from app.redis_store import redis_store

        env["WXSURVEY_REDIS_URL"] = redis_store.url
    supervisor = Supervisor(
        [
            Child("web", web_argv(host, port, settings.app.web_workers, settings.app.web_threads)),
            Child("worker", worker_argv()),
            Child("scheduler", worker_argv("--cron")),
        ],
        env=env,
        log=lambda message: click.echo(f"[wxsurvey] {message}", err=True),
    )
    supervisor.start()
    try:
        if supervisor.wait_http(
            f"http://{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{port}/healthz"
        ):
            click.echo("\n".join(_links(settings)))
            sys.stdout.flush()
        supervisor.run_until_stopped()
    finally:
        supervisor.stop()
        if not settings.redis.url:
            from app.redis_store import stop_embedded

            stop_embedded(settings.var_dir)
            click.echo("[wxsurvey] stopped embedded redis", err=True)


@click.command()
@with_appcontext
@click.option("--host", help="Bind address (default: app.host).")
@click.option("--port", type=int, help="Port (default: app.port).")
def serve(host: str | None, port: int | None) -> None:
    """Run only the web server (gunicorn), for production nodes."""
    settings = current_app.config["SETTINGS"]
    argv = web_argv(
        host or settings.app.host,
        port or settings.app.port,
        settings.app.web_workers,
        settings.app.web_threads,
    )
    os.execv(argv[0], argv)
