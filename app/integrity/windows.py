# Sliding-window counts per department and survey, kept in Redis hashes (held by the drain that
# owns the shard, read by the others): per city day, per 10-minute bucket, and the department's
# baseline by hour.
"""Keys (s = survey id, d = department id), all with a TTL:

- `wx:ig:{<s>:<d>}:d<day>`: n (answers that day), ns (no scan before), h<hour> (per hour),
  u:<user-agent class> (outside WeChat only), t:<text hash>; `...:ip`: one field per address
  prefix (HLEN = distinct prefixes).
- `wx:ig:{<s>:<d>}:b<bucket>`: n and s:<choice signature> per 10 minutes (a window is 2 buckets).
- `wx:ig:{<s>:<d>}:base`: w<hour of week>, o<hour of day>, `all` and `ns` totals, `first` (ms of the
  first answer): the department's own baseline for the burst, surge and no-scan signals.

The drain that owns an intake shard keeps these hashes in its process as it counts (see
app.integrity.held): it counts a batch only once the batch's transaction has committed, so a batch
replayed after a crash is not counted twice, and writes the changed fields to Redis as values
after each batch. A crash in between loses a batch's counts: these are heuristics, SQL is the
record. Other processes read Redis (read); a department's answers all go to one intake shard.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.cluster import RedisCluster

from app import clock
from app.integrity.facts import Facts
from app.redis_store import ScriptRunner

BUCKET_MS = 600_000
Increments = dict[str, dict[str, int]]  # hash key -> field -> what a batch adds
DAY_TTL = 3 * 86400  # seconds: day and bucket counts outlive any retroactive look
BASE_TTL = 60 * 86400


@functools.lru_cache(maxsize=4)
def _offset_in(zone_key: str) -> int:
    offset = datetime.now(UTC).astimezone(clock.zone()).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def offset_s() -> int:
    """The city's offset from UTC in seconds (app.timezone; zones without daylight saving time)."""
    return _offset_in(clock.zone().key)


class Place:
    """Where one response falls: its city day, hour, hour of week and buckets, and its keys."""

    __slots__ = ("day", "hour", "how", "bucket", "day_key", "ip_key", "bucket_key", "prev_key", "next_key",
                 "base_key", "day_start_ms", "yday_key", "yday_ip_key", "tmrw_key", "tmrw_ip_key",
                 "weekday")  # fmt: skip

    def __init__(self, f: Facts) -> None:
        local = f.ms // 1000 + offset_s()
        self.day, seconds = divmod(local, 86400)
        self.hour = seconds // 3600
        self.how = ((self.day + 3) % 7) * 24 + self.hour  # day 0 of the epoch was a Thursday
        self.bucket = f.ms // BUCKET_MS
        prefix = f"wx:ig:{{{f.survey_id}:{f.department_id}}}:"  # one cluster slot per survey and department
        self.day_key = f"{prefix}d{self.day}"
        self.ip_key = self.day_key + ":ip"
        self.bucket_key, self.prev_key = f"{prefix}b{self.bucket}", f"{prefix}b{self.bucket - 1}"
        self.next_key = f"{prefix}b{self.bucket + 1}"  # read only when stored answers are looked at again
        self.yday_key = f"{prefix}d{self.day - 1}"  # the day before: clusters over two days
        self.yday_ip_key = self.yday_key + ":ip"
        self.tmrw_key = f"{prefix}d{self.day + 1}"  # the day after: read on a second look only
        self.tmrw_ip_key = self.tmrw_key + ":ip"
        self.weekday = (self.day + 3) % 7
        self.base_key = prefix + "base"
        self.day_start_ms = (self.day * 86400 - offset_s()) * 1000


def places(facts: list[Facts]) -> list[tuple[Facts, Place]]:
    """Each response with its Place; responses of one department and survey in one 10-minute
    bucket share theirs (a bucket lies within one city hour and day)."""
    return placed(facts)[0]


def placed(facts: list[Facts]) -> tuple[list[tuple[Facts, Place]], list[tuple[Place, list[Facts]]]]:
    """places(facts), and the places with their responses (as grouped() gives them)."""
    cache: dict[tuple[int, int, int], tuple[Place, list[Facts]]] = {}
    pairs = []
    known = _known_places(offset_s())
    for f in facts:
        key = (f.survey_id, f.department_id, f.ms // BUCKET_MS)
        group = cache.get(key)
        if group is None:
            p = known.get(key)
            if p is None:
                p = known[key] = Place(f)
            group = cache[key] = (p, [])
        group[1].append(f)
        pairs.append((f, group[0]))
    return pairs, list(cache.values())


_PLACES: dict[int, dict[tuple[int, int, int], Place]] = {}  # city offset -> recent places


def _known_places(offset: int) -> dict[tuple[int, int, int], Place]:
    """The places of recent batches (a department's bucket recurs in every batch for ten minutes;
    a Place's keys cost more to build than everything else a batch does per place)."""
    known = _PLACES.get(offset)
    if known is None or len(known) > 20_000:
        known = _PLACES[offset] = {}
    return known


def grouped(pairs: Iterable[tuple[Facts, Place]]) -> list[tuple[Place, list[Facts]]]:
    """The places of these responses, each with its responses."""
    groups: dict[int, tuple[Place, list[Facts]]] = {}
    for f, p in pairs:
        group = groups.get(id(p))
        if group is None:
            group = groups[id(p)] = (p, [])
        group[1].append(f)
    return list(groups.values())


def minute_of_day(f: Facts) -> int:
    return (f.ms // 1000 + offset_s()) % 86400 // 60


_NONE: dict[str, int] = {}


class Counts:
    """The counts a batch is scored with: read from Redis (read), or the drain's held copy with the
    batch counted (app.integrity.held)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, int]] = defaultdict(dict)
        self.lengths: dict[str, int] = {}

    @classmethod
    def over(cls, values: dict[str, dict[str, int]], lengths: dict[str, int]) -> Counts:
        """Counts that read these hashes as they are (a drain's held copy, app.integrity.held)."""
        counts = cls.__new__(cls)
        counts.values, counts.lengths = values, lengths
        return counts

    def get(self, key: str, field: str) -> int:
        return self.values.get(key, _NONE).get(field, 0)


def needed(facts: Iterable[tuple[Facts, Place]], ahead: bool = False) -> dict[str, set[str]]:
    """The hash fields the signals of these responses read; `ahead` adds the bucket after each
    one's (stored answers looked at again: a burst's first minutes see the rest of it)."""
    want: dict[str, set[str]] = defaultdict(set)
    seen: set[int] = set()
    for f, p in facts:
        if id(p) not in seen:  # what every response of this place reads
            seen.add(id(p))
            want[p.day_key].update(("n", "ns", f"h{p.hour}"))
            want[p.yday_key].update(("n", "ns", "u:desktop"))
            want[p.bucket_key].add("n")
            want[p.prev_key].add("n")
            if ahead:
                want[p.next_key].add("n")
                want[p.tmrw_key].add("n")
            want[p.base_key].update((f"w{p.how}", f"o{p.hour}", f"wd{p.weekday}", "all", "ns", "first"))
        if f.ip:
            want[p.ip_key].add(f.ip)
            want[p.yday_ip_key].add(f.ip)
            if ahead:
                want[p.tmrw_ip_key].add(f.ip)
        signature = f"s:{f.signature}"
        want[p.bucket_key].add(signature)
        want[p.prev_key].add(signature)
        if ahead:
            want[p.next_key].add(signature)
        if f.ua and f.ua != "wechat":
            want[p.day_key].add(f"u:{f.ua}")
        if f.text:
            want[p.day_key].add(f"t:{f.text}")
    return want


def needed_by(inc: Increments, pairs: Iterable[tuple[Facts, Place]]) -> dict[str, AbstractSet[str]]:
    """What needed(pairs) finds, from the batch's own increments (a pass over its places, not over
    its responses: the drain's hot path). A hash's fields are the increments' own keys where
    nothing is added to them (not a copy)."""
    want: dict[str, AbstractSet[str]] = {key: counter.keys() for key, counter in inc.items()}

    def add(key: str, fields: AbstractSet[str]) -> None:
        want[key] = fields if key not in want else want[key] | fields

    for p in {id(p): p for _, p in pairs}.values():
        add(p.day_key, {"ns"})
        add(p.yday_key, {"n", "ns", "u:desktop"})
        add(p.base_key, {"ns"})
        add(p.prev_key, inc[p.bucket_key].keys())
        if p.ip_key in inc:
            add(p.yday_ip_key, inc[p.ip_key].keys())
    return want


# KEYS: the hashes to read. ARGV: per hash its fields joined by newlines, then per hash "1" when its
# HLEN is wanted too (a first read), "2" when it may also be read whole, then WHOLE_FIELDS. Returns
# per hash the values joined by commas (0 for a missing field), then, if wanted, its HLEN and the
# fields those values are of: "" for the fields asked, or every field of a hash of at most
# WHOLE_FIELDS (read whole: a drain that reads a hash whole never asks for it again). One script
# call per batch (and cluster slot), a few strings each way (not thousands of arguments to encode).
# The drain reads into its own copy (app.integrity.held).
WHOLE_FIELDS = 5000
READ_SCRIPT = ScriptRunner("""
local n, out = #KEYS, {}
local most = tonumber(ARGV[2 * n + 1])
for k = 1, n do
  local length = ARGV[n + k] ~= '' and redis.call('HLEN', KEYS[k])
  if length and ARGV[n + k] == '2' and length > 0 and length <= most then
    local all, fields, values = redis.call('HGETALL', KEYS[k]), {}, {}
    for i = 1, #all, 2 do fields[#fields + 1] = all[i]; values[#values + 1] = all[i + 1] end
    out[#out + 1] = table.concat(values, ',')
    out[#out + 1] = length
    out[#out + 1] = table.concat(fields, '\\n')
  else
    local fields = {}
    for f in string.gmatch(ARGV[k], '[^\\n]+') do fields[#fields + 1] = f end
    local values = {}
    for i = 1, #fields, 1000 do
      local part = redis.call('HMGET', KEYS[k], unpack(fields, i, math.min(i + 999, #fields)))
      for j = 1, #part do values[#values + 1] = part[j] or '0' end
    end
    out[#out + 1] = table.concat(values, ',')
    if length then out[#out + 1] = length; out[#out + 1] = '' end
  end
end
return out
""")


def read(redis: Redis, want: dict[str, set[str]]) -> Counts:
    """The wanted fields of every hash and the HLEN of the address-prefix hashes: one script call,
    on a Redis Cluster one per slot, i.e. per survey and department."""
    counts = Counts()
    asks = {key: (list(fields), key.endswith(":ip")) for key, fields in want.items() if fields}
    for key, fields, values, length in fetch(redis, asks):
        counts.values[key].update(zip(fields, values, strict=True))
        if length is not None:
            counts.lengths[key] = length
    return counts


def fetch(
    redis: Redis, asks: dict[str, tuple[list[str], bool]], whole: bool = False
) -> Iterator[tuple[str, list[str], list[int], int | None]]:
    """Per hash (key -> fields, whether its HLEN is wanted: a first read): its key, the fields read
    (those asked; with `whole`, all of a bucket, address or baseline hash of at most WHOLE_FIELDS
    read for the first time), their values (0 for a missing field) and its HLEN (None if not
    wanted), by READ_SCRIPT: one call per slot. (A day hash is never read whole: its texts are
    most of it, and a day before today is read for three fields.)"""
    for group in per_slot(redis, asks) if asks else ():
        args = ["\n".join(fields) for fields, _ in group.values()]
        args += ["" if not hlen else "2" if whole and _whole_kind(key) else "1"
                 for key, (_, hlen) in group.items()]  # fmt: skip
        replies = iter(READ_SCRIPT(redis, list(group), [*args, WHOLE_FIELDS]))
        for key, (fields, hlen) in group.items():
            found = as_text(next(replies))
            length = int(next(replies)) if hlen else None
            if hlen:
                every = as_text(next(replies))
                fields = every.split("\n") if every else fields
            values = list(map(int, found.split(","))) if fields and found else []
            yield key, fields, values, length


def _whole_kind(key: str) -> bool:
    """A bucket (`b<bucket>`), baseline (`base`) or address-prefix (`d<day>:ip`) hash."""
    kind = key.rpartition("}:")[2]
    return kind[0] == "b" or kind.endswith(":ip")


def as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def per_slot(redis: Redis, keyed: dict[str, Any]) -> list[dict[str, Any]]:
    """The hashes grouped per cluster slot (`wx:ig:{<survey>:<department>}:...`: a script's keys
    must share one); one group in all on a single Redis."""
    if not isinstance(redis, RedisCluster):
        return [keyed]
    groups: dict[str, dict[str, Any]] = {}
    for key, value in keyed.items():
        groups.setdefault(key[: key.index("}") + 1], {})[key] = value
    return list(groups.values())


def increments(facts: Iterable[tuple[Facts, Place]]) -> Increments:
    """What these responses add to the counts (`first` holds the earliest ms, not a sum)."""
    return counted(grouped(facts))


def counted(groups: list[tuple[Place, list[Facts]]]) -> Increments:
    """increments() of responses already grouped by place: C-speed Counters over each place's
    responses, not a dict update per response (the drain's hot path)."""
    inc: Increments = defaultdict(dict)
    for p, members in groups:
        n = len(members)
        day, base = inc[p.day_key], inc[p.base_key]
        _add(day, {"n": n, f"h{p.hour}": n})
        _add(base, {f"w{p.how}": n, f"o{p.hour}": n, f"wd{p.weekday}": n, "all": n})
        first = min([f.ms for f in members])
        base["first"] = min(base.get("first") or first, first)
        no_scan = sum([1 for f in members if f.scanned is False])
        if no_scan:
            _add(day, {"ns": no_scan})
            _add(base, {"ns": no_scan})
        _add(day, Counter([f"u:{f.ua}" for f in members if f.ua and f.ua != "wechat"]))
        _add(day, Counter([f"t:{f.text}" for f in members if f.text]))
        _add(inc[p.ip_key], Counter([f.ip for f in members if f.ip]))
        bucket = inc[p.bucket_key]
        _add(bucket, {"n": n})
        _add(bucket, Counter([f"s:{f.signature}" for f in members]))
    return {key: counter for key, counter in inc.items() if counter}


def _add(target: dict[str, int], counts: dict[str, int]) -> None:
    if not target:
        target.update(counts)
        return
    for field, n in counts.items():
        target[field] = target.get(field, 0) + n


def expected_per_day(counts: Counts, f: Facts, p: Place, field: str = "all") -> float:
    """The department's usual answers per day (field "all": on the same weekday once there is a
    week of history, a window's Sunday is not its Monday), or answers with no scan ("ns"), over
    the days before today (0 with less than one)."""
    first = counts.get(p.base_key, "first") or f.ms
    history_days = (p.day_start_ms - first) / 86_400_000
    if history_days < 1:
        return 0.0
    today = counts.get(p.day_key, "n" if field == "all" else field)
    weekday = counts.get(p.base_key, f"wd{p.weekday}") if field == "all" and history_days >= 7 else 0
    if weekday:  # (counts kept before the weekday totals existed have none: the average of all days)
        return max(weekday - today, 0) / (history_days / 7)
    return max(counts.get(p.base_key, field) - today, 0) / history_days


def expected_two_days(counts: Counts, f: Facts, p: Place, field: str = "ns") -> float:
    """The department's usual count of `field` over two days, from the days before yesterday (a
    stuffed yesterday must not raise the bar for today); 0 with less than one such day."""
    first = counts.get(p.base_key, "first") or f.ms
    history_days = (p.day_start_ms - first) / 86_400_000 - 1
    if history_days < 1:
        return 0.0
    recent = counts.get(p.day_key, field) + counts.get(p.yday_key, field)
    return 2 * max(counts.get(p.base_key, field) - recent, 0) / history_days


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
