# The citizen's whole journey (issue 13): scan event, the form (by the reply's scan pass, or OAuth
# through the simulator in its own process at WeChat's latency), the answer; closed and open loop,
# CPU per journey per process.
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Context, Result, Scenario, free_port, wait_until

CLOSED = (8, 64, 256)
OPEN_RATE = 200
# Requests to the app per journey: /wechat, the form, the answer with the scan pass; without it
# (passes off: the journey of a citizen who comes in another way) /wechat, the 302 to WeChat, the
# callback (which answers with the form) and the answer.
APP_REQUESTS = {True: 3, False: 4}
# The deployment puts nginx in front of gunicorn (deploy/nginx-wxsurvey.conf): phones and WeChat's
# servers connect to nginx, and nginx reaches gunicorn over its keep-alive pool (`keepalive 32` per
# nginx worker process, two on this machine's two cores). The load generator stands for nginx and
# keeps such a pool; one open-loop run a scenario has each citizen connect to gunicorn themselves
# (no nginx), the bench's way before 2026-12-07, to show what the pool saves gunicorn.
UPSTREAM_KEEPALIVE = 64
TICKS = os.sysconf("SC_CLK_TCK")


# --- CPU of the processes serving the journey ---------------------------------------------------


def _tree(pid: int) -> list[int]:
    """pid and its descendants (gunicorn's workers, RQ's work horses while they live)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def _cpu_ticks(pid: int) -> int:
    """utime + stime + the reaped children's (a finished work horse lands in its parent's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, dict[int, int]]:
    return {name: {p: _cpu_ticks(p) for root in roots for p in _tree(root)} for name, roots in groups.items()}


def cpu_spent(before: dict[str, dict[int, int]], after: dict[str, dict[int, int]]) -> dict[str, float]:
    spent = {}
    for name, now in after.items():
        # A pid that appeared counts whole; one whose count went down is a new process on a reused pid.
        ticks = sum(max(0, t - before.get(name, {}).get(pid, 0)) for pid, t in now.items())
        spent[name] = round(ticks / TICKS, 2)
    return spent


def _redis_pid(url: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).info("server")["process_id"])


def _postgres_pids(stack) -> list[int]:
    """The PostgreSQL backends serving this stack (its application_name), when it runs on one."""
    if not stack._pg_schema:
        return []
    from sqlalchemy import create_engine, text

    engine = create_engine(stack._pg_admin_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"), {"a": stack._pg_schema}
        )
        pids = [int(r[0]) for r in rows]
    engine.dispose()
    return pids


# --- the run --------------------------------------------------------------------------------------


def journeys(
    url: str, *, duration: float, concurrency: int | None = None, rate: float | None = None, upstream: int = 0
):
    spec = {"url": url, "duration": duration, "concurrency": concurrency, "rate": rate, "timeout": 30,
            "upstream_keepalive": upstream}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "bench.journey_client"], input=json.dumps(spec),
        capture_output=True, text=True, cwd=ROOT, timeout=duration + 300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"journey client failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout)


def _counted(stack) -> int:
    from sqlalchemy import func, select, text

    from app.db import db
    from app.models import Response

    with stack.app().app_context():
        if stack._pg_schema:  # the bench's own count (a scan of the table) is not the stack's CPU
            db.session.execute(text("SET application_name TO 'wxsurvey-bench-observer'"))
            db.session.commit()  # (a SET rolled back with its transaction would be undone)
        count = db.session.scalar(select(func.count()).select_from(Response))
        db.session.rollback()
        return int(count)


def _journey_settings(passes: bool) -> tuple[dict[str, str], int]:
    from app.dev.simulator import simulator_url

    sim_port = free_port()
    return {
        "WXSURVEY_WECHAT_SIMULATOR_URL": simulator_url("127.0.0.1", sim_port),
        "WXSURVEY_WECHAT_SIMULATOR_LATENCY_MS": "sns/oauth2/access_token=80",
        "WXSURVEY_WECHAT_SIMULATOR_ERROR_RATE": "*=0.001",
        # Every bench citizen comes from 127.0.0.1; in the field they come from many prefixes. The
        # limit stays on (its counting is in the cost) but out of reach.
        "WXSURVEY_LIMITS_SUBMISSIONS_PER_PREFIX": "1000000000",
        "WXSURVEY_WECHAT_SCAN_PASS_SECONDS": "600" if passes else "0",
    }, sim_port


@contextmanager
def _simulator(stack, sim_port: int) -> Iterator[list[int]]:
    """The fake WeChat in a gunicorn of its own (as `wxsurvey run` starts it), answering; the pids
    whose CPU is WeChat's. Its codes live in a Redis server of its own: WeChat's storage is not the
    app's Redis, whose CPU the journey's target counts (sharing it, the simulator's SET and GET/DEL
    of each code were about a quarter of that Redis's CPU an OAuth journey: 0.40-0.45 ms a journey,
    0.30-0.34 without them, 2026-12-07)."""
    from app.dev.simulator import simulator_argv
    from app.redis_store.embedded import ensure_embedded, stop_embedded

    wechat_var = stack.workdir / "wechat-var"
    env = {
        **stack.env,
        "WXSURVEY_REDIS_URL": ensure_embedded(wechat_var),
        "WXSURVEY_APP_VAR_DIR": str(wechat_var),
    }
    try:
        with open(stack.workdir / "simulator.log", "ab") as log:
            sim = subprocess.Popen(
                simulator_argv("127.0.0.1", sim_port), env=env, cwd=ROOT, stdout=log, stderr=log
            )
        try:
            wait_until(lambda: _answers(stack.env["WXSURVEY_WECHAT_SIMULATOR_URL"]), 60, "the simulator")
            yield [sim.pid, _redis_pid(env["WXSURVEY_REDIS_URL"])]
        finally:
            sim.terminate()
            sim.wait(timeout=15)
    finally:
        stop_embedded(wechat_var)


def run_journey(ctx: Context, passes: bool = True) -> list[Result]:
    """Scanning citizens with the reply link's scan pass (`passes`), or all through OAuth."""
    seconds = 3 if ctx.quick else 8
    settings, sim_port = _journey_settings(passes)
    with ctx.bare() as bare:
        base = ctx.load(bare.base_url, "bench.loadgen:constant_get", duration=seconds, connections=64)
    results: list[Result] = []
    with ctx.stack("journey", settings=settings) as stack, _simulator(stack, sim_port) as wechat:
        groups = {
            "web": [stack.web.pid],  # gunicorn: its master and workers
            "worker": [w.pid for w in stack.workers],  # RQ: the drain (and its detector)
            "redis": [_redis_pid(stack.redis_url)],
            "database": _postgres_pids(stack),
            "simulator": wechat,
        }
        runs = []
        rate = 50 if ctx.quick else OPEN_RATE
        plans: list[dict[str, Any]] = [{"concurrency": c, "upstream": UPSTREAM_KEEPALIVE} for c in CLOSED]
        plans += [{"rate": rate, "upstream": UPSTREAM_KEEPALIVE}, {"rate": rate, "upstream": 0}]
        completed = 0
        for plan in plans:
            groups["database"] = _postgres_pids(stack)
            before = cpu_snapshot(groups)
            run = journeys(stack.base_url, duration=seconds, **plan)
            completed += run["completed"]
            wait_until(lambda c=completed: _counted(stack) >= c, 300, "the drain", interval=0.2)
            # Backends opened during the run (the pool grows with the threads) count too.
            groups["database"] = sorted({*groups["database"], *_postgres_pids(stack)})
            spent = cpu_spent(before, cpu_snapshot(groups))
            spent = {"app": spent["web"] + spent["worker"], **spent}
            run["cpu_s"] = spent
            per = max(1, run["completed"])
            run["cpu_ms_per_journey"] = {k: round(v * 1000 / per, 2) for k, v in spent.items()}
            run["plan"] = plan
            runs.append(run)
            print(f"[bench]     {plan}: {json.dumps(run)}", file=sys.stderr, flush=True)
        stored = _counted(stack)
    requests = APP_REQUESTS[passes]
    bare_journeys = round(base.throughput / requests, 1)
    prefix = "journey." if passes else "journey.oauth."
    for run in runs:
        plan = run["plan"]
        label = f"c{plan['concurrency']}" if "concurrency" in plan else f"open{int(plan['rate'])}"
        label += "" if plan["upstream"] else ".direct"  # each citizen's own connections to gunicorn
        cpu = run["cpu_ms_per_journey"]
        journey_cpu = round(cpu["app"] + cpu["redis"] + cpu["database"], 2)
        detail = {**run, "stored_in_sql_total": stored, "bare_req_per_s": base.throughput}
        if "concurrency" in plan:
            ok = run["errors"] == 0 and run["journeys_per_s"] >= 400 and journey_cpu <= 3
            target = ">= 400/s, 0 errors, <= 3 ms CPU (app+redis+db)"
            if plan["concurrency"] != 256:
                ok, target = None, "(no target at this concurrency)"
        else:
            p99 = run["journey"]["p99_ms"]
            ok = run["errors"] == 0 and p99 is not None and p99 < 1000
            target = "p99 of the journey < 1,000 ms, 0 errors"
        results.append(
            Result(
                f"{prefix}{label}.journeys_per_s",
                run["journeys_per_s"],
                "journeys/s",
                baseline=bare_journeys,
                baseline_name=f"bare Flask GET / {requests}",
                target=target,
                ok=ok,
                detail=detail,
            )  # fmt: skip
        )
        results.append(
            Result(
                f"{prefix}{label}.cpu_ms_per_journey",
                journey_cpu,
                "ms CPU (app+redis+db)",
                target="<= 3 ms",
                ok=journey_cpu <= 3,
                detail={"by_process": cpu},
            )  # fmt: skip
        )
    return results


def _open_loop(url: str, seconds: float, into: list[dict[str, Any]]) -> None:
    into.append(journeys(url, duration=seconds, rate=OPEN_RATE, upstream=UPSTREAM_KEEPALIVE))


def run_replaced(ctx: Context) -> list[Result]:
    """The open loop at OPEN_RATE new citizens a second while web workers are replaced: none, one
    (SIGTERM to a worker, as at max_requests), all (SIGHUP to gunicorn, `systemctl reload`)."""
    seconds = 4 if ctx.quick else 10
    settings, sim_port = _journey_settings(passes=True)
    results: list[Result] = []
    with ctx.stack("replaced", settings=settings) as stack, _simulator(stack, sim_port):
        journeys(stack.base_url, duration=2, concurrency=32)  # warm, as the journey's closed loops are
        completed = _counted(stack)
        for event in ("none", "worker", "reload"):
            runs: list[dict[str, Any]] = []
            load = threading.Thread(target=_open_loop, args=(stack.base_url, seconds, runs))
            load.start()
            time.sleep(seconds * 0.4)  # (the bench's schedule: the replacement mid-run)
            if event == "worker":
                os.kill(sorted(_tree(stack.web.pid))[1], signal.SIGTERM)
            elif event == "reload":
                os.kill(stack.web.pid, signal.SIGHUP)
            load.join()
            (run,) = runs
            completed += run["completed"]
            wait_until(lambda c=completed: _counted(stack) >= c, 300, "the drain", interval=0.2)
            print(f"[bench]     replaced {event}: {json.dumps(run)}", file=sys.stderr, flush=True)
            p99 = run["journey"]["p99_ms"]
            results.append(
                Result(
                    f"journey.replaced.{event}.p99_ms",
                    p99 or 0.0,
                    "ms (p99 of the journey)",
                    target="p99 < 1,000 ms, 0 errors, every thanked answer in SQL",
                    ok=run["errors"] == 0 and p99 is not None and p99 < 1000,
                    detail={**run, "stored_in_sql_total": _counted(stack)},
                )  # fmt: skip
            )
    return results


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/cgi-bin/token", timeout=2):
            return True
    except OSError:
        return False


SCENARIOS = [
    Scenario("journey.citizens", run_journey),
    Scenario("journey.oauth", lambda ctx: run_journey(ctx, passes=False)),
    Scenario("journey.replaced", run_replaced),
]
