"""Runs web, worker and cron scheduler as child processes for `wxsurvey run`; stops them all together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

RESTART_LIMIT = 5  # restarts of one child within RESTART_WINDOW seconds before giving up
RESTART_WINDOW = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str] | None = None, log=print) -> None:
        self.children = children
        self.env = env or dict(os.environ)
        self.log = log
        self.stopping = False

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.argv, env=self.env)
        self.log(f"started {child.name} (pid {child.process.pid})")

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def _on_signal(self, signum, _frame) -> None:
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
        for child in self.children:
            if child.process is None or child.process.poll() is None or self.stopping:
                continue
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW]
            if len(child.restarts) >= RESTART_LIMIT:
                self.log(f"{child.name} keeps exiting (code {child.process.returncode}); stopping")
                self.stopping = True
                return
            self.log(f"{child.name} exited with code {child.process.returncode}; restarting")
            child.restarts.append(now)
            self._spawn(child)

    def run_until_stopped(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        while not self.stopping:
            self.check_children()
            time.sleep(0.5)

    def stop(self, grace: float = 15.0) -> None:
        self.stopping = True
        for child in self.children:
            if child.process and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            self.log(f"stopped {child.name}")


def web_argv(host: str, port: int, workers: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "app.wsgi:app",
        "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", str(threads),
        "--worker-class", "gthread", "--graceful-timeout", "10", "--access-logfile", "-",
        # Each worker listens on its own SO_REUSEPORT socket and the kernel spreads connections
        # over them: without it one worker can accept every long-lived keep-alive connection (a
        # proxy's upstream pool, say) while the other idles, halving the capacity.
        "--reuse-port",
    ]  # fmt: skip


def worker_argv(*extra: str) -> list[str]:
    import worker

    return [sys.executable, worker.__file__, *extra]
