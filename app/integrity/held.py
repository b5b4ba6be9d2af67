# The window counts held in the drain that owns an intake shard: read from Redis once per hash,
# kept up to date in the process, written back as values (not increments) every few batches.
"""A department's answers all go to one intake shard, and with the detector on one drain at a time
owns a shard (its lease, below). The owner reads each field it needs from Redis once (a hash it
began itself, none; a small bucket, baseline or address hash whole, on its first read: see
windows.fetch), counts the batches it commits into its own copy and writes the fields they
changed back to Redis as values every few batches (WRITE_BATCHES), one script call: Redis does a
hash write per changed field instead of a read per field a batch needs and an add per field it
counts, and a write of values that is lost or made twice changes nothing. Redis stays the record
the other processes read (the sweep of leavers, the next owner).

The lease: `wx:ig:lease:{iK}` holds the owner's token for LEASE_MS, renewed after each batch.
`wx:ig:epoch:{iK}` keeps the token of the lease taken last: a process keeps its copy of a shard's
hashes only when that is still its own (nobody held the shard since, and Redis kept its data),
and otherwise reads them again: another owner may have counted in between. Writes assume one
writer per hash: drains of a version that added increments must be stopped before this one's
start, and workers restarted after `survey.intake_shards` changes (a department changes shard).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from itertools import chain, repeat

import orjson
from redis import Redis

from app.intake.shards import tag
from app.integrity import windows
from app.integrity.windows import Counts, Increments
from app.redis_store import ScriptRunner

LEASE_MS = 20_000  # an owner that stops renewing (killed, stuck) is replaced after this
IDLE_S = 3600.0  # a hash untouched this long leaves the process (written first)
# The copy is written every few batches, not after each: a field counted in several batches is
# written once (an address prefix, a choice signature recur; Redis spends about a microsecond per
# field written). Ten batches, not five: about a quarter less Redis CPU per answer at campaign
# rates (bench, 12-06). What a drain that dies loses (heuristics, SQL is the record), and how old
# the counts the sweep of leavers and the next owner read may be: up to WRITE_S.
WRITE_BATCHES = 10
WRITE_S = 10.0

# KEYS: the hashes. ARGV: the TTL of day keys, of base keys, then per hash a JSON array of its
# fields and values, interleaved (decoded by Redis's cjson, in C: no Lua loop over the fields; an
# integer value comes through as a number Redis writes in full, up to 17 digits). One HSET per
# hash, in parts of at most 7,000 arguments (Lua's unpack limit).
WRITE_SCRIPT = ScriptRunner("""
for k = 1, #KEYS do
  local pairs = cjson.decode(ARGV[2 + k])
  for i = 1, #pairs, 7000 do
    redis.call('HSET', KEYS[k], unpack(pairs, i, math.min(i + 6999, #pairs)))
  end
  redis.call('EXPIRE', KEYS[k], string.sub(KEYS[k], -5) == ':base' and ARGV[2] or ARGV[1])
end
return #KEYS
""")
# The lease (KEYS: lease, epoch; ARGV: token, ms). The epoch key holds the token of the lease taken
# last: TAKE returns the one before (nil when the lease is held by another), RENEW extends this
# token's lease, or takes it again if it lapsed and nobody took it since (1), or says it is lost (0).
TAKE_SCRIPT = ScriptRunner("""
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local before = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1])
return before or ''
""")
RENEW_SCRIPT = ScriptRunner("""
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if holder or redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
""")
RELEASE_SCRIPT = ScriptRunner("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")


def lease_key(shard: int) -> str:
    return f"wx:ig:lease:{tag(shard)}"


def epoch_key(shard: int) -> str:
    return f"wx:ig:epoch:{tag(shard)}"


class Held:
    """One shard's window hashes as this process counts them. A hash is held whole once this
    process has seen all of it (it was new, or read whole), otherwise in part: the fields it has
    read, present or not, and its length (HLEN, the distinct prefixes of an address hash)."""

    def __init__(self) -> None:
        self.forget()
        self.token = ""  # the lease held now
        self.last = ""  # the lease held last (kept after it is let go)

    def forget(self) -> None:
        self.values: dict[str, dict[str, int]] = {}  # the fields known to be there, by hash
        self.whole: set[str] = set()
        self.known: dict[str, set[str]] = {}  # a hash held in part: the fields read
        self.lengths: dict[str, int] = {}
        self.dirty: dict[str, dict[str, int]] = {}  # the fields counted since the last write, by hash
        self.used: dict[str, float] = {}
        self.pending: Increments | None = None  # a batch's counts added before its commit
        self.unwritten = 0  # batches counted since the last write
        self.written_at = time.monotonic()

    def load(self, redis: Redis, want: Mapping[str, AbstractSet[str]]) -> None:
        """Read the wanted fields not known yet, in one round trip (none in the steady state: the
        hashes a drain writes it began itself). Every field this process writes is read first."""
        asks: dict[str, tuple[list[str], bool]] = {}  # key -> fields, first read (its HLEN too)
        for key, fields in want.items():
            if key in self.whole:
                continue
            known = self.known.get(key)
            if known is None:
                asks[key] = (list(fields), True)
            else:
                missing = fields - known
                if missing:
                    asks[key] = (list(missing), False)
        for key, read, found, length in windows.fetch(redis, asks, whole=True):
            values = self.values.setdefault(key, {})
            values.update({field: n for field, n in zip(read, found, strict=True) if n})
            if length is not None:  # the first read of this hash
                self.lengths[key] = length
                if length == len(values):  # nothing there but what was read
                    self.whole.add(key)
                    continue
                self.known[key] = set()
            self.known[key].update(read)

    def counts(self, want: Mapping[str, AbstractSet[str]]) -> Counts:
        """The counts to score with: this copy itself, not a copy of it (the wanted fields are all
        loaded; a field absent is 0). Valid until the next batch is added."""
        self.used.update(dict.fromkeys(want, time.monotonic()))
        return Counts.over(self.values, self.lengths)

    def add(self, inc: Increments) -> None:
        """Count a batch before its commit (confirmed by commit, taken back by revert); its fields
        are marked changed at once, while they are at hand (a reverted one's are unmarked)."""
        self.revert()
        _apply(self.values, self.lengths, inc, 1, self.dirty)
        self.pending = inc

    def revert(self) -> None:
        """Take back the counts of a batch that was never committed (the drain failed). A field it
        brought (none there before) is unmarked: no committed batch counted it, Redis has none."""
        pending = self.pending
        if pending is not None:
            _apply(self.values, self.lengths, pending, -1)
            self.pending = None
            for key, counter in pending.items():
                marked, held = self.dirty.get(key), self.values.get(key, {})
                if marked is not None:
                    for field in counter.keys() - held.keys():
                        marked.pop(field, None)
                    if not marked:
                        del self.dirty[key]

    def commit(self, inc: Increments) -> None:
        """The committed batch's counts (fewer than added when some answers were already stored)."""
        if inc is not self.pending:
            self.revert()
            _apply(self.values, self.lengths, inc, 1, self.dirty)
        self.pending = None
        _apply_first(self.values, inc)

    def write(self, redis: Redis, force: bool = True) -> None:
        """Write the changed fields' values (unless `force`, only every WRITE_BATCHES batches or
        WRITE_S seconds); kept to write again if Redis fails. A batch counted but never committed
        (the drain failed in between) is taken back first: only committed counts are written."""
        self.revert()
        if not self.dirty:
            return
        self.unwritten += 1
        if not force and self.unwritten < WRITE_BATCHES and time.monotonic() - self.written_at < WRITE_S:
            return
        for group in windows.per_slot(redis, {key: list(fields) for key, fields in self.dirty.items()}):
            args: list = [windows.DAY_TTL, windows.BASE_TTL]
            args += [
                orjson.dumps(
                    list(
                        chain.from_iterable(
                            zip(fields, map(self.values[key].get, fields, repeat(0)), strict=True)
                        )
                    )
                )
                for key, fields in group.items()
            ]
            WRITE_SCRIPT(redis, list(group), args)
        self.dirty, self.unwritten, self.written_at = {}, 0, time.monotonic()
        self._forget_idle()

    def _forget_idle(self) -> None:
        old = time.monotonic() - IDLE_S
        for key in [key for key, at in self.used.items() if at < old]:
            self.values.pop(key, None)
            self.known.pop(key, None)
            self.lengths.pop(key, None)
            self.whole.discard(key)
            del self.used[key]

    def take(self, redis: Redis, shard: int) -> bool:
        """The shard's lease, if no other drain holds it; the copy is dropped unless this process
        held the lease last (the epoch key still names its token: not after another drain's lease,
        nor after Redis lost its data)."""
        token = secrets.token_hex(8)
        before = TAKE_SCRIPT(redis, [lease_key(shard), epoch_key(shard)], [token, LEASE_MS])
        if before is None:
            return False
        if not self.last or windows.as_text(before) != self.last:
            self.forget()
        self.token = self.last = token
        return True

    def renew(self, redis: Redis, shard: int) -> bool:
        """Extend the lease (or take it again if it lapsed with nobody taking it); False if lost."""
        keys = [lease_key(shard), epoch_key(shard)]
        return bool(RENEW_SCRIPT(redis, keys, [self.token, LEASE_MS]))

    def release(self, redis: Redis, shard: int) -> None:
        RELEASE_SCRIPT(redis, [lease_key(shard)], [self.token])
        self.token = ""


def _apply(values: dict[str, dict[str, int]], lengths: dict[str, int], inc: Increments, sign: int,
           dirty: dict[str, dict[str, int]] | None = None) -> None:  # fmt: skip
    """Add a batch's counts (sign 1, the drain's hot path; its fields marked in `dirty`) or take
    them back (-1); `first` is no sum (set on commit, _apply_first)."""
    for key, counter in inc.items():
        held = values[key]
        before, first = len(held), held.get("first")
        if sign > 0:  # (the counts are all positive: no field reaches 0)
            get = held.get
            for field, n in counter.items():
                held[field] = get(field, 0) + n
            if dirty is not None:
                marked = dirty.get(key)
                if marked is None:
                    dirty[key] = counter.copy()  # (a dict: merged faster than a set)
                else:
                    marked.update(counter)
        else:
            for field, n in counter.items():
                left = held.get(field, 0) - n
                if left:
                    held[field] = left
                else:
                    held.pop(field, None)
        if "first" in counter:
            if first is None:
                held.pop("first", None)
            else:
                held["first"] = first
        lengths[key] += len(held) - before  # the fields a batch adds or takes back are all known


def _apply_first(values: dict[str, dict[str, int]], inc: Increments) -> None:
    for key, counter in inc.items():
        first = counter.get("first")
        if first is not None:
            held = values[key]
            held["first"] = min(held.get("first") or first, first)
