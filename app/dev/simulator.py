"""The simulator's fake WeChat API and OAuth as a server of its own (dev mode only).

`wxsurvey run` starts it beside the web server (gunicorn on wechat.simulator_port, many threads:
its WeChat-like waits are sleeps) and points wechat.simulator_url at it, so a slow or busy
simulator can never take the web server's threads, as WeChat itself cannot.
"""

from __future__ import annotations

import sys

from flask import Flask

from app.config import Settings, load_settings
from app.redis_store import redis_store

SIMULATOR_THREADS = 64  # concurrent slow answers; they sleep, so threads cost no CPU


def create_simulator_app(settings: Settings | None = None) -> Flask:
    """A Flask app serving only /dev/wechat/... (the fake WeChat API and OAuth)."""
    from app.dev.fake_wechat import bp

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(SETTINGS=settings, SECRET_KEY=settings.app.secret_key, JSON_AS_ASCII=False)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    redis_store.init_app(app)
    app.register_blueprint(bp, url_prefix="/dev")
    return app


def simulator_argv(host: str, port: int) -> list[str]:
    """gunicorn serving the simulator alone: one process, threads for its sleeps, the web server's
    worker class (the cheaper per request on the machine it shares with the app, in a bench)."""
    return [
        sys.executable, "-m", "gunicorn", "app.dev.simulator:create_simulator_app()",
        "--bind", f"{host}:{port}", "--workers", "1", "--threads", str(SIMULATOR_THREADS),
        "--worker-class", "app.ops.web_worker.ThreadWorker", "--graceful-timeout", "5",
    ]  # fmt: skip


def simulator_url(host: str, port: int) -> str:
    return f"http://{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{port}/dev/wechat"
