# Intake benchmarks (issue 4): submissions through gunicorn vs a bare endpoint, p99 at a constant
# 1,000/s, drain rate vs a raw executemany, Redis bytes per queued response, a whole campaign.
from __future__ import annotations

import cProfile
import hashlib
import io
import pstats
import sqlite3
import time
from datetime import UTC, datetime
from hashlib import sha1
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.harness import RESULTS_DIR, SECRET_KEY, Context, Result, Scenario, wait_until
from bench.loadgen import http_request

SURVEY, DEPT = "demo-departments", "D08"
PATH = f"/q/{SURVEY}/{DEPT}"
ANSWERS = {
    "q_overall": "satisfied",
    "q_service_attitude": "basic",
    "q_efficiency": "satisfied",
    "q_openness": "very_satisfied",
    "q_integrity": "satisfied",
    "q_respondent_type": "citizen",
    "q_suggestion": "服务很好",
}


def submission_requests(args: dict[str, Any], host: str) -> list[bytes]:
    """Factory (runs in the load generator): n POSTs, each by its own respondent with its own form."""
    from flask.sessions import session_json_serializer
    from itsdangerous import URLSafeTimedSerializer

    from app.intake import issue_form_token

    cookies = URLSafeTimedSerializer(
        SECRET_KEY,
        salt="cookie-session",
        serializer=session_json_serializer,
        signer_kwargs={"key_derivation": "hmac", "digest_method": sha1},
    )
    prefix, started = args.get("prefix", "b"), time.time() - 60
    out = []
    for i in range(int(args["n"])):
        cookie = cookies.dumps({"wx_openid": f"{prefix}-{i}", "wx_channel": "wechat"})
        body = urlencode({**ANSWERS, "form_token": issue_form_token(SECRET_KEY, started)}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"session={cookie}"}
        out.append(http_request("POST", host, PATH, headers, body))
    return out


def _counted(stack) -> int:
    from sqlalchemy import func, select

    from app.models import Response

    app = stack.app()
    with app.app_context():
        from app.db import db

        count = db.session.scalar(select(func.count()).select_from(Response))
        db.session.rollback()
        return int(count)


def run_submit(ctx: Context) -> list[Result]:
    seconds = 3 if ctx.quick else 10
    with ctx.bare() as bare:
        base = ctx.load(
            bare.base_url,
            "bench.loadgen:constant_get",
            {"method": "POST", "body": "a=1"},
            duration=seconds,
            connections=16,
        )
    with ctx.stack("submit") as stack:
        n = int(base.throughput * seconds * 1.5) + 100
        closed = ctx.load(
            stack.base_url,
            "bench.intake:submission_requests",
            {"n": n, "prefix": "max"},
            duration=seconds,
            connections=16,
        )
        rate = 300 if ctx.quick else 1000
        count = rate * seconds
        with ctx.bare() as bare2:
            base_open = ctx.load(
                bare2.base_url,
                "bench.loadgen:constant_get",
                {"method": "POST", "body": "a=1"},
                rate=rate,
                count=count,
                connections=64,
            )
        opened = ctx.load(
            stack.base_url,
            "bench.intake:submission_requests",
            {"n": count, "prefix": "open"},
            rate=rate,
            count=count,
            connections=64,
        )
    return [
        Result(
            "intake.submit.max_throughput",
            closed.throughput,
            "req/s",
            base.throughput,
            "bare POST",
            ">= 0.5 x bare",
            closed.throughput >= 0.5 * base.throughput,
            {"statuses": closed.statuses, "p99_ms": closed.p99_ms},
        ),
        Result(
            f"intake.submit.p99_at_{rate}_per_s",
            opened.p99_ms or 0,
            "ms",
            base_open.p99_ms,
            "bare POST p99",
            "< 50 ms",
            bool(opened.p99_ms is not None and opened.p99_ms < 50 and not opened.errors),
            {
                "p50_ms": opened.p50_ms,
                "p90_ms": opened.p90_ms,
                "max_ms": opened.max_ms,
                "statuses": opened.statuses,
                "achieved_per_s": opened.throughput,
            },
        ),
    ]


def run_campaign(ctx: Context) -> list[Result]:
    total, rate = (3000, 300) if ctx.quick else (100_000, 1000)
    with ctx.stack("campaign", rq_workers=1) as stack:
        load = ctx.load(
            stack.base_url,
            "bench.intake:submission_requests",
            {"n": total, "prefix": "c"},
            rate=rate,
            count=total,
            connections=64,
            timeout=total / rate + 600,
        )
        accepted = load.statuses.get("200", 0)
        try:
            wait_until(lambda: _counted(stack) >= accepted, 300, "the drain to catch up", interval=0.2)
        except TimeoutError:
            pass
        lag = max(0.0, time.time() - load.last_completed_at)
        in_sql = _counted(stack)
        app = stack.app()
        with app.app_context():
            from app.db import db
            from app.tally_rows import tally_total

            tallied = tally_total(db.session, 1)
    ok = in_sql == accepted and tallied == accepted and lag <= 30 and accepted == total
    return [
        Result(
            "intake.campaign.lost_or_doubled",
            abs(in_sql - accepted) + abs(tallied - accepted),
            "responses",
            None,
            "",
            "0, all in SQL within 30 s",
            ok,
            {
                "submitted": total,
                "accepted": accepted,
                "in_sql": in_sql,
                "tallied": tallied,
                "statuses": load.statuses,
                "p99_ms": load.p99_ms,
            },
        ),
        Result("intake.campaign.sql_lag_after_last", round(lag, 1), "s", None, "", "<= 30 s", lag <= 30),
    ]


def _raw_executemany(path: Path, rows: list[dict], answers: list[tuple]) -> float:
    """The baseline: the same response and answer rows through sqlite3's executemany."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    started = time.perf_counter()
    with conn:
        conn.executemany(
            "INSERT INTO responses (id, idempotency_key, survey_id, department_id, respondent_key,"
            " submitted_at, received_at, channel, status, meta, flags) VALUES (:id, :idempotency_key,"
            " :survey_id, :department_id, :respondent_key, :submitted_at, :received_at, :channel, :status,"
            " :meta, :flags)",
            rows,
        )
        conn.executemany(
            "INSERT INTO answers (response_id, question_id, option_id, text) VALUES (?,?,?,?)", answers
        )
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def run_drain(ctx: Context) -> list[Result]:
    """Drain rate and Redis bytes per queued response, in this process on the stack's engines."""
    n = 5000 if ctx.quick else 50_000
    with ctx.stack("drain", rq_workers=0) as stack:
        app = stack.app()
        with app.app_context():
            from app import drain, intake
            from app.db import db
            from app.redis_store import redis_store

            client = redis_store.client
            form, dept = intake.load_form(db.session, SURVEY, DEPT)
            answers = [(q.id, q.options[1].id, None) for q in form.questions if q.kind == "single"]
            answers.append((form.questions[-1].id, None, "服务很好"))
            client.delete(intake.STREAM)
            now = datetime.now(UTC)

            def queue(count: int, prefix: str) -> None:
                pipe = client.pipeline(transaction=False)
                for i in range(count):
                    rkey = hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest()
                    sub = intake.Submission(
                        hashlib.sha256(f"{prefix}-i-{i}".encode()).hexdigest(),
                        form.id,
                        dept.id,
                        rkey,
                        now,
                        "wechat",
                        answers,
                        form.segment_question_id,
                    )
                    keys = [
                        intake.done_key(form.id, dept.id, rkey),
                        intake.STREAM,
                        f"wx:scan:{rkey}:{DEPT}",
                        intake.DRAIN_FLAG,
                    ]
                    pipe.eval(
                        intake.RECORD_SCRIPT,
                        4,
                        *keys,
                        f"{'0' * 32}|{int(now.timestamp() * 1000)}",
                        86400,
                        sub.encode(),
                        10,
                    )
                    if i % 1000 == 999:
                        pipe.execute()
                pipe.execute()

            before = int(client.info("memory")["used_memory"])
            queue(n, "d")
            per_response = (int(client.info("memory")["used_memory"]) - before) / n
            started = time.perf_counter()
            report = drain.drain_backlog(db.session, client, batch_size=1000, max_seconds=600)
            elapsed = time.perf_counter() - started
            rate = report.inserted / elapsed
            profile = cProfile.Profile()  # a second, profiled drain: where the time goes
            queue(max(1000, n // 5), "p")
            profile.enable()
            drain.drain_backlog(db.session, client, batch_size=1000, max_seconds=600)
            profile.disable()
            engine = db.engine.dialect.name
        baseline = None
        if engine == "sqlite":
            from sqlalchemy import create_engine

            from app.migrate import upgrade

            path = stack.workdir / "raw.db"
            raw_engine = create_engine(f"sqlite:///{path}")
            upgrade(raw_engine)
            raw_engine.dispose()
            stamp = now.isoformat()
            rows = [
                {
                    "id": i + 1,
                    "idempotency_key": f"{i:064d}",
                    "survey_id": form.id,
                    "department_id": dept.id,
                    "respondent_key": f"{i:064x}",
                    "submitted_at": stamp,
                    "received_at": stamp,
                    "channel": "wechat",
                    "status": "counted",
                    "meta": "{}",
                    "flags": "[]",
                }
                for i in range(n)
            ]
            answer_rows = [(i + 1, q, o, t) for i in range(n) for q, o, t in answers]
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA foreign_keys=OFF")
            baseline = n / _raw_executemany(path, rows, answer_rows)
        target = 10_000 if engine == "sqlite" else 5_000
        ok = rate >= target and (baseline is None or rate >= 0.5 * baseline)
        detail: dict[str, Any] = {"inserted": report.inserted, "batches": report.batches, "answers_each": 8}
        if not ok:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
            prof = RESULTS_DIR / "profiles" / f"drain-{engine}.txt"
            prof.parent.mkdir(parents=True, exist_ok=True)
            prof.write_text(out.getvalue())
            detail["profile"] = str(prof.relative_to(RESULTS_DIR.parent))
    return [
        Result(
            f"intake.drain.{engine}",
            round(rate),
            "responses/s",
            round(baseline) if baseline else None,
            "raw executemany" if baseline else "",
            f">= {target:,}/s and >= 0.5 x raw",
            ok,
            detail,
        ),
        Result(
            "intake.redis_bytes_per_queued_response",
            round(per_response),
            "bytes",
            None,
            "",
            "<= 1024",
            per_response <= 1024,
        ),
    ]


SCENARIOS = [
    Scenario("intake.drain", run_drain),
    Scenario("intake.submit", run_submit),
    Scenario("intake.campaign", run_campaign),
]
