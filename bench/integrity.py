# Integrity benchmark (issue 15): the stuffing detector's cost in the drain, as CPU per answer with
# and without it on the same campaign-shaped traffic (1,000 submissions/s over 25 departments).
from __future__ import annotations

import hashlib
import itertools
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import Context, Result, Scenario

SURVEY = "demo-departments"
RATE = 1000  # submissions per second, as make bench's campaign
BATCH = 1000  # what the drain job gathers per second at that rate
ROUNDS = 9  # the median round: a shared machine moves one round by +-3%


def _queue(client, app, n: int, tag: str, rng: random.Random, shard: int = 0) -> list[str]:
    """n entries on a shard's stream as record_response leaves them: 25 departments, citizens'
    carrier prefixes, WeChat mostly, a suggestion now and then, one second of campaign per 1,000."""
    from app import intake
    from app.db import db
    from app.intake import shards
    from app.intake import store as intake_store
    from app.intake.shards import scan_key
    from app.integrity.facts import answer_facts
    from app.integrity.follows import followed_key
    from app.models import Department

    codes = [code for (code,) in db.session.query(Department.code).filter(Department.level == "city")]
    forms = {code: intake.load_form(db.session, SURVEY, code) for code in codes}
    prefixes = [f"112.{rng.randrange(256)}.{rng.randrange(256)}.0/24" for _ in range(200)]
    start = datetime.now(UTC) - timedelta(seconds=n / RATE)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        code = rng.choice(codes)
        form, dept = forms[code]
        answers = [(q.id, rng.choice(q.options[:3]).id, None) for q in form.questions if q.kind == "single"]
        if rng.random() < 0.3:
            answers.append((form.questions[-1].id, None, f"窗口工作人员态度很好，第{rng.randrange(10**6)}号"))
        rkey = hashlib.sha256(f"{tag}-{i}".encode()).hexdigest()
        sub = intake_store.Submission(
            hashlib.sha256(f"{tag}-i-{i}".encode()).hexdigest(), form.id, dept.id, rkey,
            start + timedelta(seconds=i / RATE), "wechat", answers, form.segment_question_id,
            {"completion_ms": rng.randrange(20_000, 120_000), "ip": rng.choice(prefixes),
             "ua": "wechat" if rng.random() < 0.96 else "mobile",
             **answer_facts(answers, form.segment_question_id)},  # as record_response adds them
        )  # fmt: skip
        keys = [
            shards.done_key(shard, form.id, dept.id, rkey),
            shards.stream_key(shard),
            scan_key(shard, rkey, code),
            shards.drain_flag_key(shard),
            followed_key(rkey, shard),
        ]
        if rng.random() < 0.8:  # four in five scanned the department's code first
            pipe.set(keys[2], "1", ex=3600)
        pipe.eval(
            intake.RECORD_SCRIPT, 5, *keys, f"{'0' * 32}|{int(time.time() * 1000)}", 86400, sub.encode(), 10
        )
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return prefixes


def _baseline(client, app, prefixes: list[str], n: int) -> None:
    """History of the same traffic, as a drain that has run for two weeks leaves it (the steady
    state; without it the whole campaign is one burst, see detail): each department's baseline,
    yesterday's day and address-prefix counts, and the 10 minutes before the run's first answer
    (its window's earlier bucket), so that every read the detector makes finds a full hash."""
    from types import SimpleNamespace

    from app.db import db
    from app.intake import load_form
    from app.integrity.facts import choice_signature
    from app.integrity.windows import Place
    from app.models import Department

    rng = random.Random(7)
    per_hour = RATE * 3600 // 25
    per_day = per_hour * 24
    first = int((time.time() - 14 * 86400) * 1000)
    start_ms = int((time.time() - n / RATE) * 1000)
    for (code,) in db.session.query(Department.code).filter(Department.level == "city"):
        form, dept = load_form(db.session, SURVEY, code)
        fields = {f"o{h}": per_hour * 14 for h in range(24)} | {f"w{h}": per_hour * 2 for h in range(168)}
        fields |= {f"wd{d}": per_day * 2 for d in range(7)}  # the same weekday, two weeks
        fields |= {"all": per_day * 14, "ns": per_day * 14 // 5, "first": first}
        client.hset(f"wx:ig:{{{form.id}:{dept.id}}}:base", mapping=fields)
        place = Place(SimpleNamespace(ms=start_ms, survey_id=form.id, department_id=dept.id))
        day = {"n": per_day, "ns": per_day // 5, "u:mobile": per_day // 25} | {
            f"h{h}": per_hour for h in range(24)
        }
        day |= {
            f"t:{rng.getrandbits(48):012x}": 1 for _ in range(per_day * 3 // 10 // 100)
        }  # 1 in 100 kept here
        client.hset(place.yday_key, mapping=day)
        client.hset(place.yday_ip_key, mapping={prefix: per_day // len(prefixes) for prefix in prefixes})
        singles = [q for q in form.questions if q.kind == "single"]
        in_bucket = RATE * 600 // 25
        sample = 2000
        signatures: dict[str, int] = {}
        for _ in range(sample):
            answers = [(q.id, rng.choice(q.options[:3]).id, None) for q in singles]
            key = f"s:{choice_signature(answers, form.segment_question_id)}"
            signatures[key] = signatures.get(key, 0) + in_bucket // sample
        client.hset(place.prev_key, mapping={"n": in_bucket, **signatures})
        for key in (place.yday_key, place.yday_ip_key, place.prev_key):
            client.expire(key, 3 * 86400)


def _reset(client, session) -> None:
    from sqlalchemy import text

    for table in ("answers", "responses", "tally_rows", "tally_months", "audit_log"):
        session.execute(text(f"DELETE FROM {table}"))
    session.commit()
    keys = list(client.scan_iter("wx:ig:*", count=1000)) + list(client.scan_iter("wx:done:*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])


def _redis_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_detector_cost(ctx: Context) -> list[Result]:
    """The drain's CPU per answer (this process: reading the stream, decoding, the detector,
    SQLite's inserts, acknowledging) with and without the detector on two streams of the same
    traffic, a batch of each in turn, who goes first alternating (so that the load of a shared
    machine and the database's periodic work fall on both alike),
    each stream's batches as one lingering drain run takes them (the detector's counts of a batch
    added by the next batch's read, the last batch's at the end); per round the sums of each, and
    the round with the median ratio reported (all rounds in detail). Redis's own CPU beside."""
    n = 5000 if ctx.quick else 30_000
    measured: dict[str, list[tuple[float, float]]] = {"plain": [], "detector": []}
    with ctx.stack("integrity", rq_workers=0) as stack:
        app = stack.app()
        with app.app_context():
            from app.db import db
            from app.intake import drain
            from app.intake.shards import stream_key
            from app.integrity.detector import Detector
            from app.redis_store import redis_store

            client = redis_store.client
            streams = {"plain": stream_key(0), "detector": stream_key(1)}
            for round_no in range(ROUNDS):
                _reset(client, db.session)
                for shard, mode in enumerate(streams):
                    prefixes = _queue(
                        client, app, n, f"{mode}-{round_no}", random.Random(round_no), shard=shard
                    )
                    drain.ensure_group(client, streams[mode])
                _baseline(client, app, prefixes, n)
                detectors = {"plain": None, "detector": Detector(55)}
                spent = {mode: [0.0, 0.0, 0] for mode in streams}  # CPU, Redis CPU, inserted
                with drain.gc_paused():
                    for turn in itertools.count():
                        moved = 0
                        # who goes first alternates: SQLite's WAL checkpoints and Redis's own
                        # housekeeping then fall on both modes alike instead of on the second
                        for mode in sorted(streams, reverse=bool(turn % 2)):
                            stream = streams[mode]
                            report = drain.DrainReport()
                            redis_before, cpu_before = _redis_cpu(client), time.process_time()
                            entries = drain.read_batch(client, "bench", BATCH, stream=stream)
                            if entries:
                                drain.store_batch(db.session, client, entries, report, detectors[mode])
                                drain.acknowledge(client, entries, stream=stream)
                            elif detectors[mode] is not None:
                                detectors[mode].flush(client)  # the run's end: its last batch's counts
                            spent[mode][0] += time.process_time() - cpu_before
                            spent[mode][1] += _redis_cpu(client) - redis_before
                            spent[mode][2] += report.inserted
                            moved += len(entries)
                        if not moved:
                            break
                for mode, (cpu, redis_cpu, inserted) in spent.items():
                    measured[mode].append((cpu / inserted * 1e6, redis_cpu / inserted * 1e6))
                assert all(client.xlen(stream) == 0 for stream in streams.values())
    rounds = list(zip(measured["plain"], measured["detector"], strict=True))
    ratios = [d / p for (p, _), (d, _) in rounds]
    median = sorted(range(ROUNDS), key=lambda r: ratios[r])[ROUNDS // 2]
    plain, with_detector = measured["plain"][median][0], measured["detector"][median][0]
    plain_all, with_all = sum(measured["plain"][median]), sum(measured["detector"][median])
    detail: dict[str, Any] = {
        "answers_per_run": n, "batch": BATCH, "rounds": ROUNDS,
        "interleaved": "one batch of each in turn, who goes first alternating",
        "plain_us": [round(c, 1) for c, _ in measured["plain"]],
        "detector_us": [round(c, 1) for c, _ in measured["detector"]],
        "ratio_per_round": [round(r, 3) for r in ratios],
        "redis_us_plain": [round(r, 1) for _, r in measured["plain"]],
        "redis_us_detector": [round(r, 1) for _, r in measured["detector"]],
        "with_redis_ratio_per_round": [round((d + dr) / (p + pr), 3) for (p, pr), (d, dr) in rounds],
    }  # fmt: skip
    return [
        Result(
            "integrity.drain_cpu_per_answer",
            round(with_detector, 1),
            "us CPU/answer",
            round(plain, 1),
            "the same drain without the detector, interleaved batch by batch (median round)",
            "<= 1.10 x without",
            with_detector <= 1.10 * plain,
            detail,
        ),
        Result(
            "integrity.drain_cpu_per_answer_with_redis",
            round(with_all, 1),
            "us CPU/answer (drain + Redis)",
            round(plain_all, 1),
            "the same, Redis's CPU added to both (same round)",
            "<= 1.10 x without",
            with_all <= 1.10 * plain_all,
            {"redis_us": [round(measured["plain"][median][1], 1), round(measured["detector"][median][1], 1)]},
        ),
    ]


SCENARIOS = [Scenario("integrity.drain_cpu", run_detector_cost)]
