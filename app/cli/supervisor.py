"""Runs the embedded Redis, web, worker and cron scheduler as child processes for `wxsurvey run`:
restarts whichever dies, with backoff, and stops them all together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from app.redis_store.embedded import die_with_parent

# A child that dies is started again after a delay that doubles with each quick death (0.5 s up
# to 30 s) and starts over once it has stayed up a while. The stack never gives up on a child:
# web keeps serving (answers go straight to SQL while Redis is down) until the others are back.
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
# gthread's request handling by threads that take their own events, listening only while it can
# answer (app/ops/web_worker.py: workers replaced at max_requests, after a crash or at a reload take
# no connection before, nor reset any after).
WORKER_CLASS = "app.ops.web_worker.ThreadWorker"
STEADY_AFTER = 30.0  # seconds up after which a child's next death restarts it at once again


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    spawn: Callable[[], subprocess.Popen] | None = None  # instead of argv (the embedded Redis)
    ready: Callable[[], None] | None = None  # waits until the child serves (others start after)
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str] | None = None, log=print) -> None:
        self.children = children
        self.env = env or dict(os.environ)
        self.log = log
        self.stopping = False

    def _spawn(self, child: Child) -> None:
        if child.spawn is not None:
            child.process = child.spawn()
        else:
            child.process = subprocess.Popen(child.argv, env=self.env, preexec_fn=die_with_parent)
        child.started_at = time.monotonic()
        child.restart_at = None
        self.log(f"started {child.name} (pid {child.process.pid})")

    def start(self) -> None:
        for child in self.children:
            if child.process is None or child.process.poll() is not None:
                self._spawn(child)
            if child.ready is not None:
                child.ready()

    def request_stop(self, _signum=None, _frame=None) -> None:
        self.stopping = True

    def wait_http(self, url: str, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            self.check_children()
            time.sleep(0.25)
        return False

    def check_children(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if self.stopping or child.process is None:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts.append(now)
                    self._spawn(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            if now - child.started_at >= STEADY_AFTER:
                child.failures = 0
            delay = 0.0 if child.failures == 0 else min(MAX_DELAY, FIRST_DELAY * 2 ** (child.failures - 1))
            child.failures += 1
            child.restart_at = now + delay
            self.log(f"{child.name} exited with code {code}; restarting in {delay:g} s")

    def run_until_stopped(self) -> None:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        while not self.stopping:
            self.check_children()
            time.sleep(0.2)

    def stop(self, grace: float = 15.0) -> None:
        """Stop every child: web, worker and scheduler first, then the servers they use (Redis)."""
        self.stopping = True
        self._stop_group([c for c in self.children if c.ready is None], grace)
        self._stop_group([c for c in self.children if c.ready is not None], grace)

    def _stop_group(self, children: list[Child], grace: float) -> None:
        for child in children:
            if child.process and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            self.log(f"stopped {child.name}")


# Idle keep-alive connections are kept longer than nginx keeps its upstream ones (keepalive_timeout
# 60s, deploy/nginx-wxsurvey.conf), so nginx closes first and never sends a request down a connection
# gunicorn is closing (gunicorn's own default is 2 s).
KEEPALIVE_SECONDS = 75


def web_argv(host: str, port: int, workers: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "app.wsgi:app",
        "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", str(threads),
        "--worker-class", WORKER_CLASS, "--graceful-timeout", "10", "--access-logfile", "-",
        "--keep-alive", str(KEEPALIVE_SECONDS),
        "--no-control-socket",  # (gunicornc's socket: the supervisor starts and stops gunicorn itself)
    ] + (["--reuse-port"] if reuse_port(workers) else [])  # fmt: skip


def reuse_port(workers: int) -> bool:
    """Several workers listen on sockets of their own (SO_REUSEPORT) and the kernel spreads
    connections over them: on one shared socket, one worker can accept every long-lived keep-alive
    connection (a proxy's upstream pool, say) while the other idles, halving the capacity.
    WORKER_CLASS opens a worker's socket once the app is loaded and hands over when it stops. A
    single worker shares its master's socket instead: replaced, it has no other to hand over to,
    and connections wait in the master's socket while its successor loads."""
    return workers > 1


def worker_argv(*extra: str) -> list[str]:
    import worker

    return [sys.executable, worker.__file__, *extra]
