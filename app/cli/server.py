"""`wxsurvey run` (web + worker + scheduler, as `make run` uses it), `serve` (web only), `worker`."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.supervisor import Child, Supervisor, web_argv, worker_argv
from app.dev.simulator import simulator_argv, simulator_url
from app.wechat_api import uses_simulator

if TYPE_CHECKING:
    from app.config import Settings


def register(cli: click.Group) -> None:
    cli.add_command(run)
    cli.add_command(serve)


def _links(settings: Settings, base: str, fake_wechat: str = "") -> list[str]:
    from app.org.demo import ADMIN_USERNAME, DEPARTMENT_SURVEY

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
    if fake_wechat:
        lines.append(f"  fake WeChat:   {fake_wechat}  (its own process)")
    lines.append("Press Ctrl-C to stop.")
    return lines


def _follow_address(settings: Settings, host: str, port: int, env: MutableMapping[str, str]) -> str:
    """--host/--port reach the children as app.host/app.port; a dev base URL derived from the
    configured ones is derived again from these, so links, OAuth and the simulator follow them."""
    from app.config import dev_base_url

    env["WXSURVEY_APP_HOST"], env["WXSURVEY_APP_PORT"] = host, str(port)
    derived = dev_base_url(settings.app.host, settings.app.port)
    if settings.is_production or settings.app.base_url != derived or "WXSURVEY_APP_BASE_URL" in env:
        return settings.app.base_url
    env["WXSURVEY_APP_BASE_URL"] = dev_base_url(host, port)  # over a config file's copy of the old one
    return env["WXSURVEY_APP_BASE_URL"]


def _embedded_child(settings):
    """The embedded Redis as a supervised child: this process must own it (one owner per var/)."""
    from app.redis_store.embedded import EmbeddedRedisError, own_embedded

    try:
        server = own_embedded(settings.var_dir, settings.redis.embedded_appendfsync)
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from None

    def spawn():
        server.process = server.spawn()  # from its append-only file, after a crash too
        return server.process

    def ready():
        server.wait_ready()
        server.mark("running")

    return server, Child("redis", server.argv(), process=server.process, spawn=spawn, ready=ready)


@click.command()
@with_appcontext
@click.option("--host", help="Bind address (default: app.host).")
@click.option("--port", type=int, help="Port (default: app.port).")
def run(host: str | None, port: int | None) -> None:
    """Run the embedded Redis, web, worker and scheduler together until Ctrl-C."""
    settings = current_app.config["SETTINGS"]
    host, port = host or settings.app.host, port or settings.app.port
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    base = _follow_address(settings, host, port, env)
    if "PROMETHEUS_MULTIPROC_DIR" not in env:
        # /metrics adds up the counters of web workers, worker and scheduler (app/metrics.py)
        metrics_dir = settings.var_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    children, server = [], None
    if not settings.redis.url:
        # The children connect to the server this process owns and supervises.
        from app.redis_store import redis_store

        server, child = _embedded_child(settings)
        children.append(child)
        env["WXSURVEY_REDIS_URL"] = redis_store.url
    children += [
        Child("web", web_argv(host, port, settings.app.web_workers, settings.app.web_threads)),
        Child("worker", worker_argv()),
        Child("scheduler", worker_argv("--cron")),
    ]
    if uses_simulator(settings) and not settings.wechat.simulator_url:
        # The fake WeChat in a process of its own: its WeChat-like waits hold none of web's threads.
        sim_port = settings.wechat.simulator_port
        children.append(Child("simulator", simulator_argv(host, sim_port)))
        env["WXSURVEY_WECHAT_SIMULATOR_URL"] = simulator_url(host, sim_port)
    supervisor = Supervisor(
        children, env=env, log=lambda message: click.echo(f"[wxsurvey] {message}", err=True)
    )
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    try:
        supervisor.start()
        if supervisor.wait_http(
            f"http://{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{port}/healthz"
        ):
            click.echo("\n".join(_links(settings, base, env.get("WXSURVEY_WECHAT_SIMULATOR_URL", ""))))
            sys.stdout.flush()
        supervisor.run_until_stopped()
    finally:
        if server is not None:
            server.mark("stopping")  # a new stack waits for this one instead of joining its Redis
        supervisor.stop()
        if server is not None:
            server.stop()


@click.command()
@with_appcontext
@click.option("--host", help="Bind address (default: app.host).")
@click.option("--port", type=int, help="Port (default: app.port).")
def serve(host: str | None, port: int | None) -> None:
    """Run only the web server (gunicorn), for production nodes."""
    settings = current_app.config["SETTINGS"]
    host, port = host or settings.app.host, port or settings.app.port
    _follow_address(settings, host, port, os.environ)  # gunicorn, exec'd below, reads them
    argv = web_argv(host, port, settings.app.web_workers, settings.app.web_threads)
    if not settings.redis.url:
        from app.redis_store.embedded import keep_across_exec

        keep_across_exec(settings.var_dir)  # gunicorn, in this process, stays the Redis's owner
    os.execv(argv[0], argv)
