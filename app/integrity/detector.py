# The stuffing detector in the drain: scores each batch before it is written (a response over the
# threshold goes to SQL already quarantined), counts the batch in the window counts once it has
# committed (held in the process, written to Redis) and looks again at stored answers whose window
# the batch made suspicious (retroactive quarantine).
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integrity import follows, windows
from app.integrity.facts import Facts, from_response, from_submission
from app.integrity.held import Held
from app.integrity.quarantine import hold
from app.integrity.score import GROUP_SIGNALS, score, strengths, suspects
from app.integrity.windows import Place
from app.models import Department, Response

LEVELS = 4  # a group's signal is looked at again each time it reaches a new quarter of its strength
HOURS_TTL = 60.0  # seconds a process keeps the departments' opening hours
STORED_FACTS = (
    Response.id,
    Response.survey_id,
    Response.department_id,
    Response.submitted_at,
    Response.respondent_key,
    Response.meta,
    Response.flags,
)  # what from_response reads
LEASE_POLL_S = 0.05  # how often a drain waiting for the shard's lease asks again

log = logging.getLogger(__name__)


@dataclass
class Assessment:
    facts: list[tuple[Facts, Place]] = field(default_factory=list)
    increments: dict = field(default_factory=dict)
    groups: dict[str, tuple[int, int, int, int, int]] = field(default_factory=dict)  # level key -> range
    held: int = 0


class Detector:
    """Scores batches in the drain; `threshold` from integrity.threshold (0..100). The window
    counts of the shard being drained are held in the process (app.integrity.held)."""

    def __init__(self, threshold: int = 55) -> None:
        self.threshold = threshold
        self._hours: dict[int, tuple[int, int] | None] = {}
        self._hours_at = 0.0
        self._held: dict[int | None, Held] = {}
        self._shard: int | None = None  # the shard whose lease this process holds (begin)
        self.holding = True  # False once the lease was lost: the drain stops

    def opening_hours(self, session: Session) -> dict[int, tuple[int, int] | None]:
        from app.integrity.signals import parse_hours

        if time.monotonic() - self._hours_at > HOURS_TTL:
            rows = session.execute(select(Department.id, Department.opening_hours).where(
                Department.opening_hours.is_not(None)))  # fmt: skip
            self._hours = {dept_id: _hours_or_none(parse_hours, text) for dept_id, text in rows}
            self._hours_at = time.monotonic()
        return self._hours

    @property
    def held(self) -> Held:
        return self._held.setdefault(self._shard, Held())

    def begin(self, redis: Redis, shard: int, wait_s: float = 0.0) -> bool:
        """Take the shard's lease (waiting up to wait_s for a drain that is ending to let it go);
        False if another drain holds it: that one drains the shard."""
        deadline = time.monotonic() + wait_s
        held = self._held.setdefault(shard, Held())
        while not held.take(redis, shard):
            if time.monotonic() >= deadline:
                return False
            time.sleep(LEASE_POLL_S)
        self._shard, self.holding = shard, True
        return True

    def end(self, redis: Redis) -> None:
        """Write what is left and let the lease go (begin's shard), or only write (no lease)."""
        try:
            if self.holding:
                self.flush(redis)
        finally:
            if self._shard is not None:
                shard, self._shard = self._shard, None
                if self._held[shard].dirty:  # not written (Redis failed): kept, and the lease left
                    log.warning("integrity: counts of shard %s not written; its lease lapses", shard)
                else:  # to lapse, so that this process, taking it again, still owns its copy
                    self._held[shard].release(redis, shard)

    def assess(self, session: Session, redis: Redis, submissions: list) -> Assessment:
        """Score a decoded batch before it is written: sets each submission's score, reasons and
        `held`, and notes the window groups whose signal grew (see after_commit)."""
        out = Assessment()
        if not submissions:
            return out
        hours = self.opening_hours(session)
        out.facts, groups = windows.placed([from_submission(sub) for sub in submissions])  # (scored 0 so far)
        out.increments = windows.counted(groups)
        want = windows.needed_by(out.increments, out.facts)
        held = self.held
        held.load(redis, want)
        held.add(out.increments)
        counts = held.counts(want)
        for f, p, value, reasons in _weighed(groups, counts, hours, out.increments):
            sub = f.source
            sub.score, sub.reasons = value, reasons
            if value >= self.threshold:
                sub.held = True
                out.held += 1
            for name, strength in reasons:  # the signals found, strongest first
                if name in GROUP_SIGNALS:
                    key, span = _group(name, f, p)
                    level = -(-int(strength * 100) * LEVELS // 100)
                    if out.groups.get(key, (0,))[0] < level:
                        out.groups[key] = (level, f.survey_id, f.department_id, *span)
        return out

    def after_commit(self, session: Session, redis: Redis, assessment: Assessment) -> int:
        """Count the committed batch, write the counts it changed to Redis (renewing the lease),
        watch its new followers, and quarantine stored answers of any window whose signal reached
        a new level. Commits; returns answers moved."""
        self.held.commit(assessment.increments)
        self.flush(redis, force=False)
        follows.watch(redis, [f for f, _ in assessment.facts if f.followed_ms is not None])
        grown = _new_levels(redis, assessment.groups)
        if not grown:
            return 0
        seen = {f.respondent_key for f, _ in assessment.facts}
        ranges = {(s, d, start, end) for s, d, start, end in grown}
        moved = 0
        for survey_id, dept_id, start, end in sorted(ranges):
            moved += self.look_again(session, redis, survey_id, dept_id, start, end, skip=seen)
        session.commit()
        return moved

    def flush(self, redis: Redis, force: bool = True) -> None:
        """Write the held counts that changed (`force` False: when due, see app.integrity.held),
        after renewing the lease when one is held. A lost lease drops the copy unwritten: the next
        owner counts from what Redis has."""
        held = self.held
        if self._shard is not None and not held.renew(redis, self._shard):
            log.warning("integrity: the lease of intake shard %s was lost; this drain stops", self._shard)
            self.holding = False
            self._held[self._shard] = Held()
            return
        try:
            held.write(redis, force)
        except RedisError as exc:  # written with the next batch (values: nothing counted twice)
            log.warning("integrity: window counts not written yet (%s)", type(exc).__name__)

    def look_again(self, session: Session, redis: Redis, survey_id: int, department_id: int, start_ms: int,
                   end_ms: int, skip: frozenset[str] | set[str] = frozenset(),
                   extra: dict | None = None) -> int:  # fmt: skip
        """Score again the counted, unreviewed answers of one department in [start, end) with the
        counts as they are now; quarantine those over the threshold (in the caller's transaction).
        The answers are read as rows of the columns scored (a department's half hour can be
        thousands); only those to quarantine are loaded as Responses."""
        rows = session.execute(second_look(department_id, start_ms, end_ms))
        stored = [r for r in rows if r.survey_id == survey_id and r.respondent_key not in skip]
        return self.rescore(session, redis, stored, extra, held=True)

    def rescore(self, session: Session, redis: Redis, stored: Sequence, extra: dict | None = None,
                held: bool = False) -> int:  # fmt: skip
        """Score stored answers again (Responses, or rows of STORED_FACTS): with the drain's held
        counts, or (held False: outside a drain, e.g. the sweep of leavers) with what Redis has.
        Only the answers some signal may touch are weighed (score.suspects, as in the drain: a
        second look goes over a department's day or two, and few of its answers are touched)."""
        if not stored:
            return 0
        hours = self.opening_hours(session)
        facts = []
        for response in stored:
            f = from_response(response)
            f.source = response
            if extra and response.id in extra:
                f.left_ms = extra[response.id]
            facts.append(f)
        pairs, groups = windows.placed(facts)
        want = windows.needed(pairs, ahead=True)
        if held:
            self.held.load(redis, want)
            counts = self.held.counts(want)
        else:
            counts = windows.read(redis, want)
        present = windows.counted(groups)  # (what these answers are: their choices, prefixes, texts)
        weighed = _weighed(groups, counts, hours, present)
        over = [(f.source, value, reasons) for f, _, value, reasons in weighed if value >= self.threshold]
        over.sort(key=lambda held_back: held_back[0].id)  # (in the order stored: the audit names a range)
        if over and not isinstance(over[0][0], Response):  # rows of look_again
            loaded = {
                r.id: r
                for r in session.scalars(select(Response).where(Response.id.in_([r.id for r, *_ in over])))
            }
            over = [(loaded[r.id], value, reasons) for r, value, reasons in over]
        return hold(session, over, meta_updates=extra)


def second_look(department_id: int, start_ms: int, end_ms: int):
    """The counted, unreviewed answers of a department in [start, end), by its (department, time)
    index; the caller keeps its survey's. With the survey in the SQL, SQLite without statistics may
    take the (survey, time) index and read every department's answers of the range to keep one's."""
    return select(*STORED_FACTS).where(
        Response.department_id == department_id,
        Response.submitted_at >= _moment(start_ms),
        Response.submitted_at < _moment(end_ms),
        Response.status == "counted",
        Response.reviewed_at.is_(None),
    )


def _weighed(groups: list[tuple[Place, list[Facts]]], counts, hours: dict, present: dict):
    """(facts, place, score, reasons) of each answer some signal may touch (score.suspects:
    strengths finds nothing for the rest), place by place; `present` holds what the answers are
    (windows.counted of them). Where the counts do not hold those fields (counts lost, on a second
    look), the place's answers are all weighed."""
    memo: dict = {}
    for p, members in groups:
        dept_hours = hours.get(members[0].department_id)
        try:
            touched = suspects(p, members, counts, dept_hours, memo, present)
        except KeyError:
            touched = members
        for f in touched:
            yield (f, p, *score(strengths(f, p, counts, dept_hours, memo)))


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
