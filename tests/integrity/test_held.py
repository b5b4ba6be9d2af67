"""One drain at a time owns a shard's window counts (app.integrity.held), on real Redis and SQL: a
second drain finds the shard busy, a copy is read again when another drain owned the shard in
between, and a drain that lost its lease stops."""

from __future__ import annotations

import re

from app.intake.drain import drain_backlog
from app.integrity.detector import Detector
from app.integrity.held import Held, epoch_key, lease_key
from tests.integrity.test_detector import citizens


def day_count(redis_client) -> int:
    keys = [k for k in redis_client.scan_iter("wx:ig:*") if re.search(r":d\d+$", str(k))]
    return sum(int(redis_client.hget(k, "n") or 0) for k in keys)


def test_a_second_drain_finds_the_shard_busy_and_leaves_it_to_the_owner(app, session, demo, redis_client):
    citizens(app, session, redis_client, 6)
    other = Held()
    assert other.take(redis_client, 0)  # another worker's drain holds shard 0
    report = drain_backlog(session, redis_client, detector=Detector(55))
    assert report.busy and report.inserted == 0 and report.read == 0
    other.release(redis_client, 0)
    report = drain_backlog(session, redis_client, detector=Detector(55))
    assert not report.busy and report.inserted == 6
    assert not redis_client.exists(lease_key(0)), "the run lets the lease go as it ends"
    assert day_count(redis_client) == 6


def test_a_copy_is_read_again_when_another_drain_owned_the_shard_between(app, session, demo, redis_client):
    """Worker A counts 10, worker B 5 more, then A 4 more: A must not write its old copy back."""
    a, b = Detector(55), Detector(55)
    citizens(app, session, redis_client, 10)
    drain_backlog(session, redis_client, detector=a)
    citizens(app, session, redis_client, 5, start=10)
    drain_backlog(session, redis_client, detector=b)
    assert day_count(redis_client) == 15
    citizens(app, session, redis_client, 4, start=15)
    drain_backlog(session, redis_client, detector=a)
    assert day_count(redis_client) == 19
    citizens(app, session, redis_client, 3, start=19)
    drain_backlog(session, redis_client, detector=a)  # A held the lease last: its copy is kept
    assert day_count(redis_client) == 22


def test_a_drain_that_lost_its_lease_stops_and_writes_nothing_more(app, session, demo, redis_client):
    """A run stalled past its lease, and another drain took the shard: after its batch in hand it
    stops (the new owner drains the rest) and drops its copy unwritten: the counts of its run are
    lost (heuristics; SQL has every answer), none is written over what the new owner counts."""
    citizens(app, session, redis_client, 15)
    taken: list[bool] = []

    def stall() -> bool:  # after the first batch: the lease expires and another drain takes it
        if not taken:
            redis_client.delete(lease_key(0))
            taken.append(Held().take(redis_client, 0))
        return False

    report = drain_backlog(session, redis_client, batch_size=5, detector=Detector(55), should_yield=stall)
    assert taken == [True]
    assert report.batches == 2 and report.inserted == 10  # its batch in hand is stored, then it stops
    assert redis_client.xlen("wx:intake:{i0}") == 5
    assert (
        day_count(redis_client) == 0
    )  # its copy (not due to be written yet) was dropped, not written over the new owner's
    assert redis_client.exists(lease_key(0)), "the new owner's lease is left alone"


def test_a_lease_that_lapsed_with_nobody_taking_it_is_taken_again(app, session, demo, redis_client):
    """A batch slower than the lease (SQL waiting): nobody took the shard meanwhile, so the drain
    takes its lease again, keeps its copy and goes on."""
    citizens(app, session, redis_client, 15)
    lapsed: list[bool] = []

    def slow() -> bool:
        if not lapsed:
            lapsed.append(bool(redis_client.delete(lease_key(0))))
        return False

    report = drain_backlog(session, redis_client, batch_size=5, detector=Detector(55), should_yield=slow)
    assert lapsed == [True]
    assert report.batches == 3 and report.inserted == 15
    assert day_count(redis_client) == 15
    assert not redis_client.exists(lease_key(0))


def test_a_copy_is_read_again_after_redis_lost_its_data(redis_client):
    """Redis restarted empty (no AOF) while the worker kept its copy: the copy is dropped, not
    written over what the other drains count from now on."""
    held = Held()
    assert held.take(redis_client, 0)
    held.values["wx:ig:{1:2}:d1"] = {"n": 40}
    held.release(redis_client, 0)
    assert held.take(redis_client, 0) and held.values, "it held the lease last: the copy is kept"
    held.release(redis_client, 0)
    redis_client.delete(epoch_key(0))  # what a Redis that lost its data has
    assert held.take(redis_client, 0)
    assert held.values == {}
