"""Window counts (app.integrity.windows): what a batch reads is what its responses' signals need,
found from the batch's increments; the drain's copy of the counts round-trips through real Redis."""

from __future__ import annotations

import random

from app.integrity import windows
from app.integrity.facts import Facts
from app.integrity.held import Held

DAY_MS = 86_400_000


def batch(seed: int, n: int = 300) -> list[tuple[Facts, windows.Place]]:
    rng = random.Random(seed)
    start = 1_773_000_000_000
    facts = [
        Facts(
            rng.choice((1, 2)),
            rng.choice((3, 4, 5)),
            start + rng.randrange(2 * DAY_MS),
            f"r{i}",
            rng.choice((None, "112.1.2.0/24", "117.3.4.0/24", f"58.{i % 9}.1.0/24")),
            rng.choice((None, "wechat", "desktop", "mobile")),
            rng.choice((True, False, None)),
            rng.randrange(2_000, 90_000),
            rng.random() < 0.2,
            rng.choice((None, "a1b2c3", "d4e5f6")),
            rng.randrange(6),
        )  # fmt: skip
        for i in range(n)
    ]
    return windows.places(facts)


def test_a_batch_reads_from_its_increments_what_its_responses_need():
    for seed in range(5):
        pairs = batch(seed)
        assert windows.needed_by(windows.increments(pairs), pairs) == windows.needed(pairs)


def test_held_counts_round_trip_through_redis_as_values(redis_client):
    """A drain's copy: two committed batches alike double every count (`first` kept) and are
    written to Redis as values; a write made twice changes nothing; another process reading Redis
    (and a new copy loading it) sees what the copy counted."""
    pairs = batch(7)
    inc = windows.increments(pairs)
    held = Held()
    held.load(redis_client, windows.needed_by(inc, pairs))
    for _ in range(2):
        held.add(inc)
        held.commit(inc)
    dirty = {key: dict(fields) for key, fields in held.dirty.items()}
    held.write(redis_client)
    held.dirty = dirty
    held.write(redis_client)  # a write whose reply was lost, made again
    counts = windows.read(redis_client, windows.needed(pairs, ahead=True))
    again = Held()
    want = windows.needed(pairs, ahead=True)
    again.load(redis_client, want)
    loaded = again.counts(want)
    for key, counter in inc.items():
        for field, n in counter.items():
            expected = n if field == "first" else 2 * n
            assert counts.get(key, field) == loaded.get(key, field) == expected, (key, field)
        if key.endswith(":ip"):
            assert counts.lengths[key] == loaded.lengths[key] == len(counter)
    f, p = pairs[0]
    assert counts.get(p.next_key, "s:999") == loaded.get(p.next_key, "s:999") == 0  # missing fields: nothing
    assert redis_client.ttl(p.base_key) > windows.DAY_TTL


def test_a_batch_never_committed_is_taken_back_and_a_replay_counts_only_what_was_new(redis_client):
    pairs = batch(8)
    inc = windows.increments(pairs)
    held = Held()
    held.load(redis_client, windows.needed_by(inc, pairs))
    held.add(inc)  # scored, then the SQL commit failed: the next batch takes it back
    fewer = windows.increments(pairs[:100])
    held.add(fewer)
    held.commit(windows.increments(pairs[:40]))  # 60 of them were already stored (a replay)
    held.write(redis_client)
    counts = windows.read(redis_client, windows.needed(pairs))
    for key, counter in windows.increments(pairs[:40]).items():
        for field, n in counter.items():
            assert counts.get(key, field) == n, (key, field)
    assert sum(counts.get(key, "n") for key in {p.day_key for _, p in pairs}) == 40
    ip_keys = [key for key in held.values if key.endswith(":ip")]
    assert ip_keys and all(0 not in held.values[key].values() for key in ip_keys)  # no prefix left at 0
    committed = windows.increments(pairs[:40])
    for key in held.values:  # Redis holds what was committed, and no field at 0 (the HLEN of prefixes)
        stored = {field: int(n) for field, n in redis_client.hgetall(key).items()}
        assert stored.keys() == committed.get(key, {}).keys() and 0 not in stored.values(), key


def test_only_suspects_can_have_a_signal():
    """score.suspects is the drain's shortcut: for any response it passes over, strengths finds
    nothing; and it passes over most responses of an ordinary batch."""
    from app.integrity.score import score, strengths, suspects

    checked = passed_over = 0
    for seed in range(6):
        pairs = batch(seed, n=40 + 150 * (seed % 3))  # small batches: mostly quiet; large: clusters
        inc = windows.increments(pairs)
        counts = counts_of(inc)
        hours = (8 * 60, 18 * 60) if seed % 2 else None
        memo: dict = {}
        for p, members in windows.grouped(pairs):
            chosen = {id(f) for f in suspects(p, members, counts, hours, memo, inc)}
            for f in members:
                if id(f) not in chosen:
                    assert score(strengths(f, p, counts, hours, {})) == (0, []), (seed, f)
                    passed_over += 1
                checked += 1
    assert 0 < passed_over < checked


def counts_of(inc: windows.Increments) -> windows.Counts:
    """The counts of one batch alone (what a drain that began these hashes scores it with)."""
    counts = windows.Counts()
    for key, counter in inc.items():
        counts.values[key] = dict(counter)
        if key.endswith(":ip"):
            counts.lengths[key] = len(counter)
    return counts


def test_held_counts_add_batches_to_what_was_read():
    held = Held()
    held.values = {"k:ip": {"112.1.2.0/24": 3}, "k:base": {"first": 500, "all": 7}}
    held.lengths = {"k:ip": 1, "k:base": 2}
    for inc in (
        {"k:ip": {"112.1.2.0/24": 2, "58.1.1.0/24": 1}, "k:base": {"first": 400, "all": 3}},
        {"k:base": {"first": 900, "all": 1}},
    ):
        held.add(inc)
        held.commit(inc)
    counts = held.counts({"k:ip": {"112.1.2.0/24"}, "k:base": {"first", "all"}})
    assert counts.get("k:ip", "112.1.2.0/24") == 5 and counts.lengths["k:ip"] == 2  # one prefix new
    assert counts.get("k:base", "first") == 400 and counts.get("k:base", "all") == 11
    assert counts.get("k:none", "n") == 0


def test_a_submissions_facts_carry_its_choice_signature_and_text_key():
    from datetime import UTC, datetime

    from app.intake.store import Submission
    from app.integrity.facts import choice_signature, from_submission, text_key

    answers = [
        (1, 11, None),
        (2, 21, None),
        (9, 93, None),
        (5, None, "窗口工作人员态度很好很耐心"),
        (6, None, "别的"),
    ]
    meta = {"ip": "112.1.2.0/24", "ua": "wechat", "scanned": False, "completion_ms": 40_000}
    sub = Submission(
        "i" * 64, 1, 2, "r" * 64, datetime(2026, 3, 2, 9, tzinfo=UTC), "wechat", answers, 9, meta
    )
    f = from_submission(sub)
    assert f.signature == choice_signature(answers, 9) == sub.meta["sig"]
    assert f.text == text_key("窗口工作人员态度很好很耐心") == sub.meta["tx"]
    assert (f.ip, f.ua, f.scanned, f.completion_ms) == ("112.1.2.0/24", "wechat", False, 40_000)


def test_a_hash_held_in_part_is_written_without_losing_what_was_not_read(redis_client):
    """Yesterday's hash, full of another drain's counts (a day hash is never read whole): this
    drain reads the three fields it needs and the prefixes of its answers, and answers that arrive
    late for yesterday add to the fields they touch; the rest of the hash, and its prefix count,
    stay right."""
    pairs = batch(9, n=60)
    f, p = pairs[0]
    day = {"n": 500, "ns": 40, "u:desktop": 3} | {f"t:{i:06x}": 1 for i in range(300)}
    redis_client.hset(p.day_key, mapping=day)
    redis_client.hset(p.ip_key, mapping={f"10.{i}.0.0/16": 2 for i in range(50)} | {"112.1.2.0/24": 7})
    late = [(g, q) for g, q in pairs if q.day_key == p.day_key]
    inc = windows.increments(late)
    want = windows.needed_by(inc, late)
    held = Held()
    held.load(redis_client, want)
    assert len(held.values[p.day_key]) < 20, "the texts it does not need are not read"
    counts = held.counts(want)
    assert counts.get(p.day_key, "n") == 500 and counts.lengths[p.ip_key] == 51
    held.add(inc)
    held.commit(inc)
    held.write(redis_client)
    stored = redis_client.hgetall(p.day_key)
    assert int(stored["n"]) == 500 + inc[p.day_key]["n"]
    assert all(stored[f"t:{i:06x}"] == "1" for i in range(300))
    prefixes = redis_client.hgetall(p.ip_key)
    assert int(prefixes["112.1.2.0/24"]) == 7 + inc[p.ip_key].get("112.1.2.0/24", 0)
    assert len(prefixes) == held.lengths[p.ip_key] == held.counts(want).lengths[p.ip_key]
    assert held.lengths[p.ip_key] > 51  # the late answers' other prefixes are new to the hash


def test_a_small_hash_is_read_whole_once_and_never_asked_for_again(redis_client):
    """A bucket hash of at most WHOLE_FIELDS another drain counted (the bucket before) is read
    whole on its first read: the next batches' signatures are known absent without a read, and
    it is written back as it was plus what this drain counted. A day hash is read in part."""
    pairs = batch(11, n=60)
    f, p = pairs[0]
    redis_client.hset(p.bucket_key, mapping={"n": 500} | {f"s:{i}": 2 for i in range(300)})
    redis_client.hset(p.day_key, mapping={"n": 500, "ns": 40} | {f"t:{i:06x}": 2 for i in range(300)})
    held = Held()
    held.load(redis_client, {p.bucket_key: {"n"}, p.day_key: {"n"}})
    assert p.bucket_key in held.whole and held.lengths[p.bucket_key] == 301
    assert held.values[p.bucket_key]["s:299"] == 2
    assert p.day_key not in held.whole and held.values[p.day_key] == {"n": 500}
    redis_client.hset(p.bucket_key, "s:new", 5)  # (a write no owner would make: shows no second read)
    held.load(redis_client, {p.bucket_key: {"n", "s:new"}})
    assert "s:new" not in held.values[p.bucket_key]
    inc = {p.bucket_key: {"n": 3, "s:1": 1}}
    held.add(inc)
    held.commit(inc)
    held.write(redis_client)
    stored = redis_client.hgetall(p.bucket_key)
    assert (stored["n"], stored["s:1"], stored["s:2"]) == ("503", "3", "2")


def test_a_write_while_a_batch_is_uncommitted_writes_only_committed_counts(redis_client):
    """The drain failed between counting a batch and committing it (SQL down), and the run's end
    writes the copy: what was committed is written, the failed batch is not (it comes again)."""
    pairs = batch(10)
    first, failed = windows.increments(pairs[:150]), windows.increments(pairs[150:])
    held = Held()
    held.load(redis_client, windows.needed_by(first, pairs[:150]) | windows.needed_by(failed, pairs[150:]))
    held.add(first)
    held.commit(first)
    held.add(failed)
    held.write(redis_client)
    counts = windows.read(redis_client, windows.needed(pairs))
    day_keys = {p.day_key for _, p in pairs}
    assert sum(counts.get(key, "n") for key in day_keys) == 150
    for key, counter in first.items():
        for field, n in counter.items():
            assert counts.get(key, field) == n, (key, field)
