# The drain: moves queued responses from the `wx:intake` stream into SQL in batches, through a
# consumer group, exactly once: insert + tally in one transaction, then XACK (and XDEL).
"""Crash safety, step by step:

1. XREADGROUP hands a batch to this consumer; the entries stay pending until acknowledged.
2. One SQL transaction inserts the responses, their answers and their tally counts
   (app.intake.record.write_responses, ON CONFLICT DO NOTHING) and commits.
3. XACK + XDEL remove the entries from the stream.

With survey.intake_shards = N there are N streams (app.intake.shards), each with its own
group; a drain run serves one shard, and the periodic safety net enqueues one per shard.

A crash before 2 commits loses nothing (the entries are still pending); a crash between 2
and 3 replays the batch, and the replay inserts nothing twice. Entries pending on a consumer
that died are taken over with XAUTOCLAIM once idle for `claim_idle_ms`. A database outage
leaves the batch pending on this consumer; the next drain retries it first.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.intake.record import DEAD_LETTERS, DRAIN_FLAG_TTL, degraded
from app.intake.shards import LEGACY_STREAM, all_shards, drain_flag_key, stream_key
from app.intake.store import Submission, write_responses
from app.integrity import windows
from app.integrity.detector import Detector
from app.metrics import count_drained

log = logging.getLogger(__name__)

GROUP = "drain"
CLAIM_IDLE_MS = 60_000  # a batch takes well under a second; a minute of silence means a dead worker
LAG_LIMIT_SECONDS = 120  # /readyz reports the intake as lagging beyond this
LEASE_WAIT_S = 2.0  # a drain waits this long for the shard's lease: a run that is ending lets go in time

Entry = tuple[str, dict[str, str]]


@dataclass
class DrainReport:
    batches: int = 0
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    malformed: int = 0
    reclaimed: int = 0
    quarantined: int = 0  # by the stuffing detector as they were written
    retroactive: int = 0  # stored earlier, quarantined once a later batch showed their window
    yielded: bool = False  # ended early to let other queued work run
    busy: bool = False  # another drain holds the shard (its detector's lease): nothing done here
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


STREAM = stream_key(0)


def ensure_group(redis: Redis, stream: str = STREAM) -> None:
    try:
        redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_batch(
    redis: Redis, consumer: str, count: int, *, pending: bool = False, block_ms: int | None = None,
    stream: str = STREAM,
) -> list[Entry]:  # fmt: skip
    """New entries for this consumer (waiting up to block_ms for one when given), or
    (pending=True) those it was given and never acked."""
    reply = redis.xreadgroup(GROUP, consumer, {stream: "0" if pending else ">"}, count=count, block=block_ms)
    if not reply:
        return []
    return [(entry_id, fields) for entry_id, fields in reply[0][1] if fields is not None]  # type: ignore[index,misc,str-unpack]


def claim_stale(redis: Redis, consumer: str, count: int, idle_ms: int, stream: str = STREAM) -> list[Entry]:
    """Entries pending on other consumers for longer than idle_ms, now this consumer's."""
    claimed: list[Entry] = []
    start = "0-0"
    while len(claimed) < count:
        reply = redis.xautoclaim(stream, GROUP, consumer, idle_ms, start_id=start, count=count)
        start, entries = reply[0], reply[1]
        claimed.extend((entry_id, fields) for entry_id, fields in entries if fields)
        if start in ("0-0", b"0-0"):
            break
    return claimed


def store_batch(session: Session, redis: Redis, entries: list[Entry], report: DrainReport,
                detector: Detector | None = None) -> None:  # fmt: skip
    """Decode and commit one batch (the SQL step); malformed entries go to the dead letters.
    With a detector the batch is scored first (app.integrity.detector) and, once committed,
    counted in the window counts (written to Redis); stored answers its windows implicate are
    quarantined after."""
    submissions: list[Submission] = []
    for entry_id, fields in entries:
        try:
            if "p" not in fields:
                raise ValueError("malformed intake entry: no payload")
            submissions.append(
                Submission.decode(fields["p"], no_scan=fields.get("ns") == "1", followed=fields.get("fw"))
            )
        except ValueError as exc:
            log.error("drain: entry %s is malformed (%s); moved to %s", entry_id, exc, DEAD_LETTERS)
            redis.xadd(DEAD_LETTERS, {"id": entry_id, "error": str(exc)[:200], **fields})  # type: ignore[dict-item]
            report.malformed += 1
    try:
        assessment = detector.assess(session, redis, submissions) if detector is not None else None
        inserted = write_responses(session, submissions)
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        raise
    report.inserted += len(inserted)
    report.duplicates += len(submissions) - len(inserted)
    if assessment is not None and detector is not None:
        report.quarantined += sum(1 for sub in inserted if sub.held)
        if len(inserted) < len(submissions):  # a replayed batch: count only what was new
            keys = {sub.idempotency_key for sub in inserted}
            keep = [i for i, sub in enumerate(submissions) if sub.idempotency_key in keys]
            assessment.facts = [assessment.facts[i] for i in keep]
            assessment.increments = windows.increments(assessment.facts)
        try:
            report.retroactive += detector.after_commit(session, redis, assessment)
        except SQLAlchemyError:
            session.rollback()
            raise


def acknowledge(
    redis: Redis, entries: list[Entry], *, keep_flag: bool = False, stream: str = STREAM, flag: str = ""
) -> None:
    """XACK + XDEL in one round trip; keep_flag also renews the drain flag (a lingering drain is
    running: submissions need not enqueue another)."""
    ids = [entry_id for entry_id, _ in entries]
    if not ids:
        return
    pipe = redis.pipeline(transaction=False)
    pipe.xack(stream, GROUP, *ids)
    pipe.xdel(stream, *ids)
    if keep_flag:
        pipe.set(flag or drain_flag_key(0), "1", ex=DRAIN_FLAG_TTL)
    pipe.execute()


@contextmanager
def gc_paused():
    """No cyclic garbage collection during one drain run (at most max_seconds): each batch's
    thousands of short-lived objects would otherwise trigger collections that walk the whole heap,
    the app's long-lived objects included, several times per batch. Batches free their objects by
    reference counting; the few cycles left behind are collected once the run is over."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def drain_backlog(
    session: Session,
    redis: Redis,
    *,
    consumer: str | None = None,
    batch_size: int = 5000,
    claim_idle_ms: int = CLAIM_IDLE_MS,
    max_seconds: float = 30.0,
    linger_seconds: float = 0.0,
    gather_seconds: float = 0.0,
    should_yield: Callable[[], bool] | None = None,
    detector: Detector | None = None,
    shard: int = 0,
    stream: str | None = None,
) -> DrainReport:
    """Drain until the stream is empty or max_seconds have passed; SQL errors propagate
    (the batch stays pending and is retried by the next drain).

    For the drain job under steady traffic: `linger_seconds` waits (a blocking read) that long
    for new entries before calling the stream empty, so one run follows a campaign instead of a
    new RQ job per trickle; `gather_seconds` pauses after a batch smaller than batch_size, so
    entries arriving one by one are written a batch per transaction rather than one each.
    Keep linger_seconds under the Redis client's socket timeout (5 s), which the wait must not hit.
    `should_yield()`, asked after each batch, ends the run early (other work is waiting for this
    worker) and leaves the drain flag set: no new drain is enqueued until it expires, so the
    worker serves that work first; the backlog waits in Redis meanwhile.
    `shard` names the intake shard to drain (`stream` overrides its stream: the legacy one).
    With a detector, one drain at a time drains a shard (the detector holds its window counts):
    a drain that finds the shard's lease held (waiting up to LEASE_WAIT_S for a run that is
    ending) returns at once, `busy`."""
    consumer = consumer or consumer_name()
    report = DrainReport()
    started = time.monotonic()
    stream = stream or stream_key(shard)
    flag = drain_flag_key(shard)
    ensure_group(redis, stream)
    if detector is not None and not detector.begin(redis, shard, wait_s=LEASE_WAIT_S):
        report.busy = True
        return report

    def run(entries: list[Entry]) -> None:
        report.batches += 1
        report.read += len(entries)
        before = (report.inserted, report.duplicates, report.malformed)
        store_batch(session, redis, entries, report, detector)
        acknowledge(redis, entries, keep_flag=linger_seconds > 0, stream=stream, flag=flag)
        after = (report.inserted, report.duplicates, report.malformed)
        count_drained([i for i, _ in entries], *(a - b for a, b in zip(after, before, strict=True)))

    def read(pending: bool = False, block_ms: int | None = None) -> list[Entry]:
        return read_batch(redis, consumer, batch_size, pending=pending, block_ms=block_ms, stream=stream)

    def owner() -> bool:  # (with a detector: the shard's lease not lost, see app.integrity.held)
        return detector is None or detector.holding

    try:
        with gc_paused():
            while owner() and (entries := read(pending=True)):
                run(entries)
            while owner() and (entries := claim_stale(redis, consumer, batch_size, claim_idle_ms, stream)):
                report.reclaimed += len(entries)
                log.warning("drain: reclaimed %d entries left pending by a dead consumer", len(entries))
                run(entries)
            while owner() and time.monotonic() - started < max_seconds:
                entries = read()
                if not entries and linger_seconds > 0:
                    entries = read(block_ms=int(linger_seconds * 1000))
                if not entries:
                    # Clear the flag before the last look, so a submission racing this exit enqueues
                    # a new drain instead of waiting for the periodic one.
                    redis.delete(flag)
                    entries = read()
                    if not entries:
                        break
                run(entries)
                if not owner():
                    break  # the lease was lost (this run stalled past it): the new owner goes on
                if should_yield is not None and should_yield():
                    report.yielded = True
                    break
                if gather_seconds > 0 and len(entries) < batch_size:
                    time.sleep(gather_seconds)
    except SQLAlchemyError as exc:
        report.errors.append(type(exc).__name__)
        log.error("drain: SQL unavailable (%s); the backlog stays in Redis", type(exc).__name__)
        raise
    finally:
        report.seconds = round(time.monotonic() - started, 3)
        if detector is not None:
            _flush_counts(detector, redis)
    return report


def _flush_counts(detector: Detector, redis: Redis) -> None:
    """The window counts not written yet (Redis failed), and the shard's lease let go."""
    try:
        detector.end(redis)
    except RedisError as exc:
        log.warning("drain: window counts not written, lease left to expire (%s)", type(exc).__name__)


def intake_status(session: Session, redis: Redis, shards: int = 1) -> dict[str, Any]:
    """The intake readiness check: backlog, pending entries, oldest entry's age, degraded flag
    (over every shard, and the pre-shard stream while it holds entries)."""
    backlog = pending = 0
    oldest = None
    for stream in [stream_key(k) for k in all_shards(shards)] + [LEGACY_STREAM]:
        backlog += int(redis.xlen(stream))
        try:
            pending += int(redis.xpending(stream, GROUP)["pending"])
        except ResponseError:
            pass  # no group yet: nothing was ever queued
        first = redis.xrange(stream, count=1)
        if first:
            age = round(max(0.0, time.time() - int(str(first[0][0]).split("-")[0]) / 1000), 1)
            oldest = age if oldest is None else max(oldest, age)
    is_degraded = degraded.last is not None and time.time() - degraded.last < 300
    return {
        "ok": (oldest is None or oldest < LAG_LIMIT_SECONDS) and not is_degraded,
        "backlog": backlog,
        "pending": pending,
        "oldest_seconds": oldest,
        "degraded": is_degraded,
        "direct_sql_writes": degraded.direct_writes,
        "unreplicated_sql_writes": degraded.unreplicated,
        "shards": max(1, shards),
        "dead_letters": int(redis.xlen(DEAD_LETTERS)),
    }
