# Sliding-window counts per department and survey, kept in Redis hashes so that every drain worker
# sees the same ones: per city day, per 10-minute bucket, and the department's baseline by hour.
"""Keys (s = survey id, d = department id), all with a TTL:

- `wx:ig:<s>:<d>:d<day>`: n (answers that day), ns (no scan before), h<hour> (per hour),
  u:<user-agent class> (outside WeChat only), t:<text hash>; `...:ip`: one field per address
  prefix (HLEN = distinct prefixes).
- `wx:ig:<s>:<d>:b<bucket>`: n and s:<choice signature> per 10 minutes (a window is 2 buckets).
- `wx:ig:<s>:<d>:base`: w<hour of week>, o<hour of day>, `all` and `ns` totals, `first` (ms of the
  first answer): the department's own baseline for the burst, surge and no-scan signals.

The drain reads the counts a batch needs before writing it and adds the batch's own after its
transaction commits, so a batch replayed after a crash is not counted twice (a crash in between
loses a batch's counts: these are heuristics, SQL is the record).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from redis import Redis

from app.integrity.facts import Facts
from app.tally.rows import CITY_TZ

BUCKET_MS = 600_000
DAY_TTL = 3 * 86400  # seconds: day and bucket counts outlive any retroactive look
BASE_TTL = 60 * 86400
OFFSET_S = int(CITY_TZ.utcoffset(datetime.now(UTC).replace(tzinfo=None)).total_seconds())  # no DST in China


class Place:
    """Where one response falls: its city day, hour, hour of week and buckets, and its keys."""

    __slots__ = ("day", "hour", "how", "minute", "bucket", "day_key", "ip_key", "bucket_key", "prev_key",
                 "base_key", "day_start_ms")  # fmt: skip

    def __init__(self, f: Facts) -> None:
        local = f.ms // 1000 + OFFSET_S
        self.day, seconds = divmod(local, 86400)
        self.hour, self.minute = seconds // 3600, seconds // 60
        self.how = ((self.day + 3) % 7) * 24 + self.hour  # day 0 of the epoch was a Thursday
        self.bucket = f.ms // BUCKET_MS
        prefix = f"wx:ig:{f.survey_id}:{f.department_id}:"
        self.day_key = f"{prefix}d{self.day}"
        self.ip_key = self.day_key + ":ip"
        self.bucket_key, self.prev_key = f"{prefix}b{self.bucket}", f"{prefix}b{self.bucket - 1}"
        self.base_key = prefix + "base"
        self.day_start_ms = (self.day * 86400 - OFFSET_S) * 1000


def _day_fields(f: Facts, p: Place) -> list[str]:
    fields = ["n", "ns", f"h{p.hour}"]
    if f.ua and f.ua != "wechat":
        fields.append(f"u:{f.ua}")
    if f.text:
        fields.append(f"t:{f.text}")
    return fields


class Counts:
    """Counts read from Redis (plus, for a batch not yet added, the batch's own)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, int]] = defaultdict(dict)
        self.lengths: dict[str, int] = {}

    def get(self, key: str, field: str) -> int:
        return self.values.get(key, {}).get(field, 0)

    def add(self, increments: dict[str, Counter]) -> None:
        for key, counter in increments.items():
            values = self.values[key]
            for field, n in counter.items():
                if field == "first":
                    values[field] = min(values.get(field) or n, n)
                    continue
                if key.endswith(":ip") and not values.get(field):
                    self.lengths[key] = self.lengths.get(key, 0) + 1
                values[field] = values.get(field, 0) + n


def needed(facts: Iterable[tuple[Facts, Place]]) -> dict[str, set[str]]:
    """The hash fields the signals of these responses read."""
    want: dict[str, set[str]] = defaultdict(set)
    for f, p in facts:
        want[p.day_key].update(_day_fields(f, p))
        if f.ip:
            want[p.ip_key].add(f.ip)
        for key in (p.bucket_key, p.prev_key):
            want[key].update(("n", f"s:{f.signature}"))
        want[p.base_key].update((f"w{p.how}", f"o{p.hour}", "all", "ns", "first"))
    return want


def read(redis: Redis, want: dict[str, set[str]]) -> Counts:
    """One pipeline: HMGET of every hash's wanted fields, HLEN of the address-prefix hashes."""
    counts = Counts()
    if not want:
        return counts
    pipe = redis.pipeline(transaction=False)
    plan = [(key, sorted(fields)) for key, fields in want.items()]
    for key, fields in plan:
        pipe.hmget(key, fields)
        if key.endswith(":ip"):
            pipe.hlen(key)
    replies = iter(pipe.execute())
    for key, fields in plan:
        values = counts.values[key]
        for field, value in zip(fields, next(replies), strict=True):
            if value is not None:
                values[field] = int(value)
        if key.endswith(":ip"):
            counts.lengths[key] = int(next(replies))
    return counts


def increments(facts: Iterable[tuple[Facts, Place]]) -> dict[str, Counter]:
    """What these responses add to the counts (`first` holds the earliest ms, not a sum)."""
    inc: dict[str, Counter] = defaultdict(Counter)
    for f, p in facts:
        day = inc[p.day_key]
        day["n"] += 1
        day[f"h{p.hour}"] += 1
        if f.scanned is False:
            day["ns"] += 1
            inc[p.base_key]["ns"] += 1
        if f.ua and f.ua != "wechat":
            day[f"u:{f.ua}"] += 1
        if f.text:
            day[f"t:{f.text}"] += 1
        if f.ip:
            inc[p.ip_key][f.ip] += 1
        bucket = inc[p.bucket_key]
        bucket["n"] += 1
        bucket[f"s:{f.signature}"] += 1
        base = inc[p.base_key]
        base[f"w{p.how}"] += 1
        base[f"o{p.hour}"] += 1
        base["all"] += 1
        base["first"] = min(base.get("first") or f.ms, f.ms)
    return inc


def write(redis: Redis, inc: dict[str, Counter]) -> None:
    """Add a committed batch's counts (one pipeline)."""
    if not inc:
        return
    pipe = redis.pipeline(transaction=False)
    for key, counter in inc.items():
        for field, n in counter.items():
            if field == "first":
                pipe.hsetnx(key, "first", n)
            else:
                pipe.hincrby(key, field, n)
        pipe.expire(key, BASE_TTL if key.endswith(":base") else DAY_TTL)
    pipe.execute()


def expected_per_day(counts: Counts, f: Facts, p: Place, field: str = "all") -> float:
    """The department's usual answers per day (field "all"), or answers with no scan ("ns"), over
    the days before today (0 with less than one)."""
    first = counts.get(p.base_key, "first") or f.ms
    history_days = (p.day_start_ms - first) / 86_400_000
    if history_days < 1:
        return 0.0
    today = counts.get(p.day_key, "n" if field == "all" else field)
    return max(counts.get(p.base_key, field) - today, 0) / history_days


def expected_in_window(counts: Counts, f: Facts, p: Place) -> float:
    """The department's usual number of answers in 20 minutes at this hour: the same hour of the
    same weekday over the weeks before today, or of any day when there is less than a week."""
    first = counts.get(p.base_key, "first") or f.ms
    history_days = (p.day_start_ms - first) / 86_400_000
    today = counts.get(p.day_key, f"h{p.hour}")
    if history_days >= 7:
        per_hour = (counts.get(p.base_key, f"w{p.how}") - today) / (history_days / 7)
    elif history_days >= 1:
        per_hour = (counts.get(p.base_key, f"o{p.hour}") - today) / history_days
    else:
        return 0.0
    return max(per_hour, 0.0) / 3
