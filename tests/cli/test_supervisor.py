"""`wxsurvey run` keeps its stack up: a child that dies is restarted with backoff, the embedded
Redis from its append-only file, and web keeps taking answers (straight to SQL) meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import redis

from app.cli.supervisor import Child, Supervisor
from tests.stack import Stack, wait_until


def redis_pid(stack: Stack) -> int | None:
    client = redis.Redis(unix_socket_path=str(stack.var / "redis.sock"), socket_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


@pytest.mark.slow
def test_embedded_redis_killed_again_and_again_stack_stays_up_no_answer_lost(tmp_path):
    stack = Stack(tmp_path).start()
    try:
        assert all(stack.submit("before") for _ in range(5))
        for round_ in range(7):  # more deaths than the old supervisor's limit of 5 a minute
            old = redis_pid(stack)
            assert old is not None
            os.kill(old, signal.SIGKILL)
            # Answers keep being taken while Redis is down or loading its append-only file.
            assert all(stack.submit(f"r{round_}") for _ in range(6)), stack.log.read_text()[-3000:]
            wait_until(lambda old=old: redis_pid(stack) not in (None, old), 30, "redis restarted")
        assert stack.process.poll() is None, "the supervisor stopped itself"
        assert stack.healthy()
        assert all(stack.submit("after") for _ in range(5))
        assert stack.refused == []
        stack.check_exactly_once()
        log = stack.log.read_text()
        assert "keeps exiting" not in log and "redis exited with code" in log
    finally:
        stack.stop()


def worker_pid(stack: Stack, not_in: set[int]) -> int | None:
    """The pid of the stack's RQ worker (not the cron scheduler), if one runs."""
    out = subprocess.run(["pgrep", "-P", str(stack.process.pid), "-f", "worker.py$"], capture_output=True)
    pids = [int(pid) for pid in out.stdout.split() if int(pid) not in not_in]
    return pids[0] if pids else None


@pytest.mark.slow
def test_worker_killed_mid_stream_is_restarted_and_the_backlog_drains(tmp_path):
    stack = Stack(tmp_path).start()
    try:
        killed: set[int] = set()
        for round_ in range(3):
            assert all(stack.submit(f"w{round_}") for _ in range(10))
            worker = wait_until(lambda: worker_pid(stack, killed), 60, "a worker")
            os.kill(worker, signal.SIGKILL)
            killed.add(worker)
        assert stack.process.poll() is None
        stack.check_exactly_once()
    finally:
        stack.stop()


def test_a_child_that_keeps_dying_is_restarted_with_growing_delays_and_never_given_up(tmp_path):
    """The policy on a real process that dies at once: the delays double, and it is still
    restarted after more deaths than the old limit (5 a minute)."""
    logged: list[str] = []
    child = Child("flaky", [sys.executable, "-c", "raise SystemExit(3)"])
    supervisor = Supervisor([child], log=logged.append)
    supervisor.start()
    try:
        wait_until(lambda: (supervisor.check_children(), len(child.restarts) >= 6)[1], 60, "six restarts")
        assert not supervisor.stopping
        gaps = [b - a for a, b in zip(child.restarts, child.restarts[1:], strict=False)]
        assert gaps[0] < 1 and gaps[-1] >= 3.9  # 0, 0.5, 1, 2, 4 s ... up to 30 s
        assert "flaky exited with code 3; restarting in 4 s" in logged
    finally:
        supervisor.stop()
