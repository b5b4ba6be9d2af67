# `python -m chaos [--quick]` (`make chaos`): two real stacks under steady load, faults one after
# another, each checked answer by answer; exits 1 if any answer is lost or counted twice.
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from chaos import faults
from chaos.servers import PostgresCluster, RedisServer, SmallDisk
from chaos.stack import ROOT, Stack

RESULTS = ROOT / "chaos-results"


def embedded_round(work: Path, quick: bool, rounds: int) -> list[dict]:
    """`wxsurvey run` on its defaults (embedded Redis), the SQLite file on a small disk, one web
    worker (it shares its master's socket)."""
    disk = SmallDisk(work)
    disk.mount()
    stack = Stack(work / "embedded", WXSURVEY_DATABASE_URL=f"sqlite:///{disk.path / 'wxsurvey.db'}")
    results = []
    try:
        stack.start()
        load = faults.Load(stack).start()
        try:
            time.sleep(3)  # the load settles before the first fault
            for _ in range(rounds):
                results.append(faults.kill_worker(stack, load))
                results.append(faults.kill_embedded_redis(stack, load))
                results.append(faults.fill_disk(stack, load, disk, hold=8 if quick else 20))
                results.append(faults.retry_storm(stack, load, deliveries=200, tries=3, interval=5))
                results.append(faults.replace_web_worker(stack, load))
                results.append(faults.reload_web(stack, load))
        finally:
            load.stop()
    finally:
        stack.stop()
        disk.unmount()
    return results


MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


@contextmanager
def deploy_sysctl() -> Iterator[None]:
    """deploy/sysctl-wxsurvey.conf's setting for the round (the machine's own restored after)."""
    try:
        before = MIGRATE_REQ.read_text().strip()
        MIGRATE_REQ.write_text("1")
    except OSError:  # an older kernel, or not root: the round runs without it
        yield
        return
    try:
        yield
    finally:
        MIGRATE_REQ.write_text(before)


def server_round(work: Path, quick: bool, rounds: int) -> list[dict]:
    """The same stack on a Redis server configured as deploy/ ships it and on PostgreSQL, with
    deploy/'s kernel setting."""
    with deploy_sysctl():
        return _server_round(work, quick, rounds)


def _server_round(work: Path, quick: bool, rounds: int) -> list[dict]:
    redis_server, cluster = RedisServer(work), PostgresCluster(work)
    redis_server.start()
    cluster.init()
    stack = Stack(
        work / "servers",
        WXSURVEY_REDIS_URL=redis_server.url,
        WXSURVEY_DATABASE_URL=cluster.url,
        WXSURVEY_APP_WEB_WORKERS="2",  # as production: a socket per worker (reuse_port), handed over
    )
    results = []
    try:
        stack.start()
        load = faults.Load(stack).start()
        try:
            time.sleep(3)
            for _ in range(rounds):
                results.append(faults.kill_deploy_redis(stack, load, redis_server))
                results.append(faults.restart_postgres(stack, load, cluster, hold=8 if quick else 20))
                # (held past the load's 10 s request timeout, so waiting out the lock cannot pass)
                results.append(faults.lock_answers_table(stack, load, cluster, hold=12 if quick else 20))
                results.append(faults.kill_worker(stack, load))
                results.append(faults.replace_web_worker(stack, load))
                results.append(faults.reload_web(stack, load))
        finally:
            load.stop()
    finally:
        stack.stop()
        cluster.stop()
        redis_server.stop()
    return results


def machine() -> str:
    cpus = os.cpu_count()
    memory = ""
    if Path("/proc/meminfo").exists():
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"{platform.system()} {platform.release()}, {cpus} cores{memory}, Python {platform.python_version()}"
    )


def _load_held(load: dict) -> bool:
    """Every submission thanked and every scan answered in time while the fault lasted."""
    return load["acknowledged"] == load["submitted"] and load["scans_answered"] == load["scans"]


def table(results: list[dict]) -> str:
    head = (
        "| fault | how | load held (ack/sent, per s) | acknowledged | in SQL | lost | counted twice "
        "| refused then stored | outage s | recover s | verify |\n" + "|---" * 11 + "|\n"
    )
    rows = []
    for r in results:
        load = r["load"]
        held = f"{load['acknowledged']}/{load['submitted']}, {load['per_second']}/s"
        if "webhook_requests" in r:
            answered = r["webhook_requests"] - r["webhook_slow_or_failed"]
            held += f"; webhook {answered}/{r['webhook_requests']} in < 5 s"
        if "forms_opened" in r:
            quick_forms = r["forms_opened"] - r["forms_slow_or_failed"]
            held += f"; forms opened and answered {quick_forms}/{r['forms_opened']}, each form in < 1 s"
        rows.append(
            f"| {r['fault']} | {r['how']} | {held} | {r['acknowledged']} | {r['in_sql']} | {r['lost']} "
            f"| {r['counted_twice']} | {r['refused_but_stored']} | {r['outage_seconds']} "
            f"| {r['recover_seconds']} | {'pass' if r['tallies_verify'] else 'FAIL'} |"
        )
    return head + "\n".join(rows) + "\n"


def write_report(results: list[dict], quick: bool, rounds: int, seconds: float, path: Path) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "make chaos CHAOS_ARGS=--quick" if quick else "make chaos"
    text = f"""# Reliability

Written by `{command}` on {when}, commit {commit.stdout.strip() or "?"},
in {seconds:.0f} s, on {machine()}.

Each fault is injected into a real `wxsurvey run` stack while citizens submit answers (about
16 a second over 4 connections) and WeChat delivers scans (4 a second). The suite then waits,
with no manual step, until the stack has recovered (database and Redis answer, the intake
stream is empty, every acknowledged answer is in SQL) and checks answer by answer: every
submission that got a thank-you page must be in SQL exactly once (lost and counted twice must
read 0) and none that got an error page may be; `wxsurvey tallies verify` must pass. Each fault
runs {rounds} time(s) in turn; the counts are cumulative over the stack's run. "Outage" is how
long the fault was held (a killed process is restarted by the supervisor or, for the Redis
server, by the suite playing systemd 1 s
later); "recover" runs from the end of the outage to full recovery. A fault the stack does not
recover from within 3 minutes fails the run, which prints /readyz, the answers' counts and the
end of the stack's log, and keeps that log (and the Redis server's or PostgreSQL's) in
chaos-results/.

Stacks: the embedded defaults (embedded Redis supervised by `wxsurvey run`, SQLite on a tmpfs
the suite mounts, one web worker on its master's socket); then a Redis server configured as
deploy/ ships it, a PostgreSQL cluster of the suite's own (never the machine's shared one) and two
web workers, each on a socket of its own (`reuse_port`), with deploy/'s kernel setting
(`net.ipv4.tcp_migrate_req = 1`). A web worker replaced or a reload must
hold the load: every submission thanked and every scan answered while the old workers hand over
to the new ones. So must the answers' table locked as a migration locks it: meanwhile new
citizens also open the form (each within a second: its "answered here before?" look-up gives up
after 200 ms) and answer.

{table(results)}
Reproduce: `make chaos` (as root on Linux: the suite mounts a tmpfs and runs PostgreSQL as the
`postgres` user); `make chaos CHAOS_ARGS=--quick` is the short form `.ci/run` uses.
"""
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round, short outages (< 3 min)")
    parser.add_argument("--rounds", type=int, help="rounds of every fault (default: 1 quick, 2 full)")
    parser.add_argument("--report", default=str(ROOT / "RELIABILITY.md"), help="where to write the report")
    parser.add_argument("--no-report", action="store_true", help="print the results only")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wxsurvey-chaos-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as its own user under it
        rounds = args.rounds or (1 if args.quick else 2)
        results = embedded_round(Path(tmp), args.quick, rounds) + server_round(Path(tmp), args.quick, rounds)
    seconds = time.monotonic() - started
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"chaos-{'quick' if args.quick else 'full'}.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    if not args.no_report:
        write_report(results, args.quick, rounds, seconds, Path(args.report))
    bad = [
        r["fault"]
        for r in results
        if r["lost"]
        or r["counted_twice"]
        or r["refused_but_stored"]
        or not r["tallies_verify"]
        or not r["stack_up"]
        or r.get("webhook_slow_or_failed")
        or r.get("forms_slow_or_failed")
        or r.get("retries_with_another_reply")
        or (r.get("hold_load") and not _load_held(r["load"]))
    ]
    print(
        f"chaos: {len(results)} faults in {seconds:.0f} s; "
        + (f"FAILED: {', '.join(bad)}" if bad else "all held")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
