# The steady load and the faults of `make chaos`. Each fault is injected under load; then the
# suite waits, with no manual step, until the stack has recovered, and checks answer by answer.
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chaos.servers import PostgresCluster, RedisServer, SmallDisk
from chaos.stack import Stack, listening_sockets, wait_until

RECOVERY_TIMEOUT = 180.0


@dataclass
class Load:
    """Citizens submitting at `rate` a second over `threads` connections, and scans at `scan_rate`;
    every outcome kept with its time. Stops by itself after `limit` seconds."""

    stack: Stack
    rate: float = 16.0
    threads: int = 4
    scan_rate: float = 4.0
    limit: float = 1800.0
    submissions: list[tuple[float, bool]] = field(default_factory=list)
    scans: list[tuple[float, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> Load:
        self._ends = time.monotonic() + self.limit
        for i in range(self.threads):
            self._workers.append(threading.Thread(target=self._submit_loop, args=(i,), daemon=True))
        self._workers.append(threading.Thread(target=self._scan_loop, daemon=True))
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _paced(self, interval: float, step) -> None:
        due = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < self._ends:
            step()
            due += interval
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _submit_loop(self, index: int) -> None:
        def step() -> None:
            ok = self.stack.submit(f"load{index}")
            self.submissions.append((time.monotonic(), ok))

        self._paced(self.threads / self.rate, step)

    def _scan_loop(self) -> None:
        serial = iter(range(10**9))

        def step() -> None:
            n = next(serial)
            status, reply, seconds = self.stack.scan(f"oCHAOS{os.getpid()}x{n}", int(time.time()), f"n{n}")
            self.scans.append((time.monotonic(), status == 200 and bool(reply) and seconds < 5))

        self._paced(1 / self.scan_rate, step)

    def window(self, start: float, end: float) -> dict[str, float]:
        subs = [ok for t, ok in self.submissions if start <= t <= end]
        scans = [ok for t, ok in self.scans if start <= t <= end]
        seconds = max(end - start, 1e-9)
        return {
            "seconds": round(seconds, 1),
            "submitted": len(subs),
            "acknowledged": sum(subs),
            "per_second": round(sum(subs) / seconds, 1),
            "scans": len(scans),
            "scans_answered": sum(scans),
        }


def recovered(stack: Stack) -> bool:
    """Database and Redis answer, the stream is empty, every acknowledged answer is in SQL."""
    checks = stack.readyz().get("checks", {})
    intake = checks.get("intake", {})
    if not (checks.get("database", {}).get("ok") and checks.get("redis", {}).get("ok")):
        return False
    if intake.get("backlog") or intake.get("pending"):
        return False
    counts = stack.exactly_once(timeout=0)
    return counts["lost"] == 0


def measure(
    stack: Stack, load: Load, name: str, inject, restore=None, hold: float = 10.0, logs: tuple = ()
) -> dict:
    """Inject a fault under load (and `restore` it after `hold` seconds), wait for recovery,
    then check every answer so far. No recovery: the evidence kept (the stack's log and `logs`)."""
    started = time.monotonic()
    detail = inject() or {}
    if restore is not None:
        time.sleep(hold)  # the outage lasts this long on purpose: the load runs against it
        restore()
    restored = time.monotonic()
    try:
        wait_until(lambda: recovered(stack), RECOVERY_TIMEOUT, f"recovery from {name}")
    except AssertionError:
        stack.keep_evidence(name, logs)
        raise
    done = time.monotonic()
    counts = stack.exactly_once()
    return {
        "fault": name,
        **detail,
        "load": load.window(started, done),
        "recover_seconds": round(done - restored, 1),
        "outage_seconds": round(restored - started, 1),
        **counts,
        "tallies_verify": stack.verify_tallies(),
        "stack_up": stack.process.poll() is None and stack.healthy(),
    }


# --- the faults -------------------------------------------------------------------------------------


def kill_worker(stack: Stack, load: Load) -> dict:
    def inject() -> dict:
        pid = wait_until(lambda: stack.children("worker.py$"), 60, "a worker")[0]
        wait_until(lambda: stack.readyz().get("checks", {}).get("intake", {}).get("backlog"), 30, "a batch")
        os.kill(pid, 9)
        return {"how": f"SIGKILL of the RQ worker (pid {pid}) with a batch in the stream"}

    return measure(stack, load, "worker SIGKILL mid-batch", inject)


def kill_embedded_redis(stack: Stack, load: Load) -> dict:
    def inject() -> dict:
        pid = stack.children("redis-server")[0]
        os.kill(pid, 9)
        return {"how": f"SIGKILL of the embedded redis-server (pid {pid}); the supervisor restarts it"}

    return measure(stack, load, "embedded Redis SIGKILL", inject)


def kill_deploy_redis(stack: Stack, load: Load, server: RedisServer) -> dict:
    def inject() -> dict:
        server.kill()
        return {"how": f"SIGKILL of redis-server ({server.config}); restarted 1 s later as systemd would"}

    name = "Redis server (deploy config) SIGKILL"
    return measure(stack, load, name, inject, server.start, hold=1.0, logs=(server.log,))


def restart_postgres(stack: Stack, load: Load, cluster: PostgresCluster, hold: float) -> dict:
    def inject() -> dict:
        cluster.stop("fast")
        return {"how": f"pg_ctl stop -m fast, {hold:g} s down, pg_ctl start"}

    name = "PostgreSQL stop and restart"
    return measure(stack, load, name, inject, cluster.start, hold=hold, logs=(cluster.log,))


def lock_answers_table(stack: Stack, load: Load, cluster: PostgresCluster, hold: float) -> dict:
    """A migration holding the answers' table at a peak (ACCESS EXCLUSIVE, as an ALTER TABLE
    takes it), while new citizens open the form and answer (2 a second on top of the load's 16,
    under the 20 a second one address may send: limits.submissions_per_prefix): every form within
    a second (its earlier-answer look-up gives up), every answer thanked."""
    import psycopg

    holder = psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres")
    stop, forms = threading.Event(), []

    def citizens() -> None:
        due = time.monotonic()
        while not stop.is_set():
            forms.append(stack.open_and_answer("lock"))
            due += 1.0
            stop.wait(max(0.0, due - time.monotonic()))

    opening = [threading.Thread(target=citizens, daemon=True) for _ in range(2)]

    def inject() -> dict:
        holder.execute("SET lock_timeout = '10s'")
        holder.execute("LOCK TABLE responses IN ACCESS EXCLUSIVE MODE")  # (until the rollback)
        for thread in opening:
            thread.start()
        how = f"LOCK TABLE responses IN ACCESS EXCLUSIVE MODE for {hold:g} s, new citizens opening forms"
        return {"how": how, "hold_load": True}

    def restore() -> None:
        stop.set()
        for thread in opening:
            thread.join(timeout=30)
        holder.rollback()
        holder.close()

    result = measure(stack, load, "answers' table locked", inject, restore, hold=hold)
    slow = sum(1 for thanked, seconds in forms if not thanked or seconds >= 1.0)
    return {**result, "forms_opened": len(forms), "forms_slow_or_failed": slow}


def fill_disk(stack: Stack, load: Load, disk: SmallDisk, hold: float) -> dict:
    def inject() -> dict:
        disk.fill()
        return {"how": f"the {disk.size_mb} MiB tmpfs under the SQLite file filled, freed {hold:g} s later"}

    return measure(stack, load, "disk full under SQLite", inject, disk.free, hold=hold)


def _web_workers(stack: Stack) -> tuple[int, list[int]]:
    """gunicorn's master and its workers."""
    (master,) = stack.children("gunicorn app.wsgi:app")
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True)
    return master, [int(pid) for pid in out.stdout.split()]


def _replaced(stack: Stack, old: list[int], count: int) -> bool:
    """The old workers gone, as many new ones listening (a single worker inherits its master's
    socket from the fork on), and the server answering: with one worker, that is the new one."""
    _, now = _web_workers(stack)
    if len(now) != count or set(now) & set(old) or not all(listening_sockets(pid, stack.port) for pid in now):
        return False
    return stack.healthy()


def replace_web_worker(stack: Stack, load: Load) -> dict:
    """One gunicorn worker stopped as at max_requests; the fault lasts until its successor listens."""

    def inject() -> dict:
        _, workers = _web_workers(stack)
        os.kill(workers[0], signal.SIGTERM)
        wait_until(lambda: _replaced(stack, workers[:1], len(workers)), 60, "the worker replaced")
        how = f"SIGTERM to a gunicorn worker (pid {workers[0]}), as at max_requests"
        return {"how": how, "hold_load": True}

    return measure(stack, load, "web worker replaced", inject)


def reload_web(stack: Stack, load: Load) -> dict:
    """SIGHUP to gunicorn, as `systemctl reload wxsurvey-web`: every worker replaced at once."""

    def inject() -> dict:
        master, workers = _web_workers(stack)
        os.kill(master, signal.SIGHUP)
        wait_until(lambda: _replaced(stack, workers, len(workers)), 60, "every worker replaced")
        how = f"SIGHUP to gunicorn (pid {master}), as `systemctl reload wxsurvey-web`"
        return {"how": how, "hold_load": True}

    return measure(stack, load, "web reload", inject)


def retry_storm(stack: Stack, load: Load, deliveries: int, tries: int = 3, interval: float = 5.0) -> dict:
    """`deliveries` scan events at once, each delivered `tries` times `interval` s apart, as
    WeChat retries: every try answered within 5 s, with the first try's reply."""
    now, base = int(time.time()), f"oSTORM{os.getpid()}x"
    replies: dict[int, list] = {i: [] for i in range(deliveries)}
    slow_or_failed = 0

    def deliver(i: int) -> None:
        nonlocal slow_or_failed
        status, reply, seconds = stack.scan(f"{base}{i}", now, f"storm{i}")
        if status != 200 or seconds >= 5:
            slow_or_failed += 1
        replies[i].append(reply.get("Content") or reply.get("Articles") or str(reply))

    def inject() -> dict:
        with ThreadPoolExecutor(max_workers=min(deliveries, 200)) as pool:
            for attempt in range(tries):
                if attempt:
                    time.sleep(interval)
                list(pool.map(deliver, range(deliveries)))
        differing = sum(1 for got in replies.values() if len(set(got)) != 1)
        return {
            "how": f"{deliveries} deliveries at once, each {tries} times {interval:g} s apart",
            "webhook_requests": deliveries * tries,
            "webhook_slow_or_failed": slow_or_failed,
            "retries_with_another_reply": differing,
        }

    return measure(stack, load, "WeChat retry storm", inject)
