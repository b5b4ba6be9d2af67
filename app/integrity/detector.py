# The stuffing detector in the drain: scores each batch before it is written (a response over the
# threshold goes to SQL already quarantined), adds the batch to the window counts once it has
# committed (with the next batch's read) and looks again at stored answers whose window the batch
# made suspicious (retroactive quarantine).
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integrity import follows, windows
from app.integrity.facts import Facts, from_response, from_submission
from app.integrity.quarantine import hold
from app.integrity.score import GROUP_SIGNALS, score, strengths, suspects
from app.integrity.windows import Place
from app.models import Department, Response

LEVELS = 4  # a group's signal is looked at again each time it reaches a new quarter of its strength
HOURS_TTL = 60.0  # seconds a process keeps the departments' opening hours
IN_DOUBT = 64  # batches' counts kept to send again at most (the oldest dropped first)

log = logging.getLogger(__name__)


@dataclass
class Assessment:
    facts: list[tuple[Facts, Place]] = field(default_factory=list)
    increments: dict = field(default_factory=dict)
    groups: dict[str, tuple[int, int, int, int, int]] = field(default_factory=dict)  # level key -> range
    held: int = 0


class Detector:
    """Scores batches in the drain; `threshold` from integrity.threshold (0..100)."""

    def __init__(self, threshold: int = 55) -> None:
        self.threshold = threshold
        self._hours: dict[int, tuple[int, int] | None] = {}
        self._hours_at = 0.0
        # A committed batch's counts, added by the next batch's read (one script call for both)
        # or by flush() when the drain run ends or a second look needs them.
        self._unwritten: windows.Increments = {}
        # Counts sent with a mark whose call failed: Redis may have added them before the reply
        # was lost. Sent again with the same mark (added at most once), or dropped after half the
        # mark's life (a count lost rather than doubled: heuristics, SQL is the record).
        self._in_doubt: list[tuple[str, windows.Increments, float]] = []

    def opening_hours(self, session: Session) -> dict[int, tuple[int, int] | None]:
        from app.integrity.signals import parse_hours

        if time.monotonic() - self._hours_at > HOURS_TTL:
            rows = session.execute(select(Department.id, Department.opening_hours).where(
                Department.opening_hours.is_not(None)))  # fmt: skip
            self._hours = {dept_id: _hours_or_none(parse_hours, text) for dept_id, text in rows}
            self._hours_at = time.monotonic()
        return self._hours

    def assess(self, session: Session, redis: Redis, submissions: list) -> Assessment:
        """Score a decoded batch before it is written: sets each submission's score, reasons and
        `held`, and notes the window groups whose signal grew (see after_commit)."""
        out = Assessment()
        if not submissions:
            return out
        hours = self.opening_hours(session)
        out.facts, groups = windows.placed([from_submission(sub) for sub in submissions])  # (scored 0 so far)
        out.increments = windows.counted(groups)
        self._settle(redis)
        want = windows.needed_by(out.increments, out.facts)
        counts = self._send(lambda adding, mark: windows.read(redis, want, adding, mark))
        counts.add(out.increments)
        memo: dict = {}
        for p, members in groups:
            dept_hours = hours.get(members[0].department_id)
            for f in suspects(p, members, counts, dept_hours, memo):
                sub = f.source
                sub.score, sub.reasons = score(strengths(f, p, counts, dept_hours, memo))
                if sub.score >= self.threshold:
                    sub.held = True
                    out.held += 1
                for name, strength in sub.reasons:  # the signals found, strongest first
                    if name in GROUP_SIGNALS:
                        key, span = _group(name, f, p)
                        level = -(-int(strength * 100) * LEVELS // 100)
                        if out.groups.get(key, (0,))[0] < level:
                            out.groups[key] = (level, f.survey_id, f.department_id, *span)
        return out

    def after_commit(self, session: Session, redis: Redis, assessment: Assessment) -> int:
        """Note the committed batch's counts (added by the next batch's read or by flush), watch its
        new followers, and quarantine stored answers of any window whose signal reached a new
        level (with the counts added first). Commits; returns answers moved."""
        self._unwritten = windows.merged(self._unwritten, assessment.increments)
        follows.watch(redis, [f for f, _ in assessment.facts if f.followed_ms is not None])
        grown = _new_levels(redis, assessment.groups)
        if not grown:
            return 0
        self.flush(redis)
        seen = {f.respondent_key for f, _ in assessment.facts}
        ranges = {(s, d, start, end) for s, d, start, end in grown}
        moved = 0
        for survey_id, dept_id, start, end in sorted(ranges):
            moved += self.look_again(session, redis, survey_id, dept_id, start, end, skip=seen)
        session.commit()
        return moved

    def flush(self, redis: Redis) -> None:
        """Add the counts of the committed batches not yet added (the drain calls this as it ends;
        a process that dies first loses one batch's counts: heuristics, SQL is the record)."""
        self._settle(redis)
        if self._unwritten:
            self._send(lambda adding, mark: windows.write(redis, adding, mark))

    def _send(self, call):
        """call(adding, mark) with the committed counts taken out first. If it fails they are in
        doubt (see _in_doubt), never still unwritten to be added a second time, and the call is
        made once more without them (a Redis that refuses writes, its memory full, still reads)."""
        adding, self._unwritten = self._unwritten, {}
        mark = secrets.token_hex(8) if adding else ""
        try:
            return call(adding, mark)
        except RedisError as exc:
            if not adding:
                raise
            log.warning("integrity: window counts in doubt, to be sent again (%s)", type(exc).__name__)
            self._in_doubt = [*self._in_doubt[-(IN_DOUBT - 1) :], (mark, adding, time.monotonic())]
            return call({}, "")

    def _settle(self, redis: Redis) -> None:
        """Send again the counts in doubt, each with its own mark; those older than half the mark's
        life are dropped. Any left when Redis fails again wait for the next batch."""
        fresh = time.monotonic() - windows.MARK_TTL / 2
        self._in_doubt = [item for item in self._in_doubt if item[2] > fresh]
        while self._in_doubt:
            mark, adding, _ = self._in_doubt[0]
            try:
                windows.write(redis, adding, mark)
            except RedisError as exc:
                log.warning("integrity: window counts still in doubt (%s)", type(exc).__name__)
                return
            self._in_doubt.pop(0)

    def look_again(self, session: Session, redis: Redis, survey_id: int, department_id: int, start_ms: int,
                   end_ms: int, skip: frozenset[str] | set[str] = frozenset(),
                   extra: dict | None = None) -> int:  # fmt: skip
        """Score again the counted, unreviewed answers of one department in [start, end) with the
        counts as they are now; quarantine those over the threshold (in the caller's transaction)."""
        query = select(Response).where(
            Response.survey_id == survey_id,
            Response.department_id == department_id,
            Response.submitted_at >= _moment(start_ms),
            Response.submitted_at < _moment(end_ms),
            Response.status == "counted",
            Response.reviewed_at.is_(None),
        )
        stored = [r for r in session.scalars(query) if r.respondent_key not in skip]
        return self.rescore(session, redis, stored, extra)

    def rescore(
        self, session: Session, redis: Redis, stored: list[Response], extra: dict | None = None
    ) -> int:
        if not stored:
            return 0
        hours = self.opening_hours(session)
        facts = []
        for response in stored:
            f = from_response(response)
            if extra and response.id in extra:
                f.left_ms = extra[response.id]
            facts.append(f)
        pairs = windows.places(facts)
        counts = windows.read(redis, windows.needed(pairs, ahead=True))
        over: list = []
        memo: dict = {}
        for response, (f, p) in zip(stored, pairs, strict=True):
            value, reasons = score(strengths(f, p, counts, hours.get(f.department_id), memo))
            if value >= self.threshold:
                over.append((response, value, reasons))
        return hold(session, over, meta_updates=extra)


def _hours_or_none(parse, text):
    try:
        return parse(text)
    except ValueError:
        return None


def _group(name: str, f: Facts, p: Place) -> tuple[str, tuple[int, int]]:
    """The window group a signal was read from, and the time range its answers fall in."""
    day = (p.day_start_ms, p.day_start_ms + 86_400_000)
    bucket = ((p.bucket - 1) * windows.BUCKET_MS, (p.bucket + 2) * windows.BUCKET_MS)
    base = f"wx:ig:{f.survey_id}:{f.department_id}:lv"
    if name == "burst":
        return f"{base}|b{p.bucket}", bucket
    if name == "surge":
        return f"{base}|v{p.day}", day
    if name == "same_answers":
        return f"{base}|s{p.bucket}:{f.signature}", bucket
    two_days = (day[0] - 86_400_000, day[1])  # an address cluster over two days implicates the day before
    if name == "ip_cluster":
        return f"{base}|i{p.day}:{f.ip}", two_days
    if name == "ua_cluster":
        return f"{base}|u{p.day}:{f.ua}", day
    if name == "text_duplicates":
        return f"{base}|t{p.day}:{f.text}", day
    return f"{base}|n{p.day}", day


def _new_levels(redis: Redis, groups: dict) -> list[tuple[int, int, int, int]]:
    """The groups whose level went up since any drain last looked (levels kept in Redis)."""
    if not groups:
        return []
    items = sorted(groups.items())
    pipe = redis.pipeline(transaction=False)
    for key, _ in items:
        hash_key, _, name = key.partition("|")
        pipe.hget(hash_key, name)
    previous = pipe.execute()
    pipe = redis.pipeline(transaction=False)
    grown = []
    for (key, (level, s, d, start, end)), before in zip(items, previous, strict=True):
        if level > int(before or 0):
            hash_key, _, name = key.partition("|")
            pipe.hset(hash_key, name, level)
            pipe.expire(hash_key, windows.DAY_TTL)
            grown.append((s, d, start, end))
    pipe.execute()
    return grown


def _moment(ms: int):
    from app.integrity.facts import moment

    return moment(ms)
