"""The per-process cache of survey forms and departments at campaign peak: one reader per key
goes to SQL when an entry expires, the others go on with the entry they had, a reader stuck in
SQL is taken over, and nobody is left without an answer or given one that is not a load's."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from app.errors import NotFound, Unavailable
from app.intake import forms
from app.intake.forms import _FormCache

WAIT = 10  # seconds: how long a test waits for its threads before it fails


class Load:
    """A load that counts its calls and, while `gate` is closed, holds every caller in SQL."""

    def __init__(self, value="survey", error: Exception | None = None) -> None:
        self.value, self.error = value, error
        self.calls = 0
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            self.calls += 1
        self.entered.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        if self.error is not None:
            raise self.error
        return self.value


class Readers:
    """`count` threads each calling `target` once; what each got, in `results`."""

    def __init__(self, count: int, target) -> None:
        self.results: list = []
        self.threads = [threading.Thread(target=self._run, args=(target,), daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _run(self, target) -> None:
        try:
            self.results.append(target())
        except Exception as exc:  # noqa: BLE001 - the test reads what each thread got
            self.results.append(exc)

    def done(self) -> list:
        deadline = time.monotonic() + WAIT
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "readers still waiting"
        return self.results


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def expired(value: str) -> tuple[Clock, _FormCache]:
    """A cache holding `value` for survey "s", and its clock moved past the entry's time."""
    clock = Clock()
    cache = _FormCache(clock)
    cache.get("survey", "s", lambda: value)
    clock.now += forms.FORM_CACHE_SECONDS + 1
    return clock, cache


def test_an_expired_entry_is_read_once_while_the_others_go_on_with_it():
    _, cache = expired("old")
    load = Load("new")
    reloader = Readers(1, lambda: cache.get("survey", "s", load))
    assert load.entered.wait(WAIT)
    others = Readers(20, lambda: cache.get("survey", "s", load))
    assert others.done() == ["old"] * 20  # at once, from the entry they had, while SQL is read
    load.gate.set()
    assert reloader.done() == ["new"]
    assert cache.get("survey", "s", load) == "new"
    assert load.calls == 1 and not cache.loading


def test_a_reload_stuck_in_sql_is_taken_over_and_its_late_value_does_not_win():
    clock, cache = expired("old")
    stuck = Load("late")
    first = Readers(1, lambda: cache.get("survey", "s", stuck))
    assert stuck.entered.wait(WAIT)
    assert cache.get("survey", "s", stuck) == "old"  # within LOAD_WAIT: the old entry
    clock.now += _FormCache.LOAD_WAIT + 1
    fresh = Load("fresh")
    fresh.gate.set()
    assert cache.get("survey", "s", fresh) == "fresh"  # the next reader read it again
    stuck.gate.set()
    assert first.done() == ["late"]
    assert cache.get("survey", "s", stuck) == "fresh"  # the stuck read started earlier
    assert stuck.calls == 1 and fresh.calls == 1 and not cache.loading


def test_the_first_readers_of_a_key_wait_for_one_load():
    cache = _FormCache()
    load = Load("first")
    readers = Readers(20, lambda: cache.get("survey", "s", load))
    assert load.entered.wait(WAIT)
    load.gate.set()
    assert readers.done() == ["first"] * 20
    assert load.calls == 1


def test_a_key_that_is_not_found_is_not_cached_and_every_waiter_hears_so():
    cache = _FormCache()
    load = Load(error=NotFound("没有找到这项调查，请重新扫描二维码。"))
    readers = Readers(5, lambda: cache.get("survey", "forged", load))
    assert load.entered.wait(WAIT)
    load.gate.set()
    results = readers.done()
    assert len(results) == 5 and all(isinstance(r, NotFound) for r in results)
    assert not cache.entries and not cache.loading


def test_sql_down_serves_the_expired_entry_and_a_new_key_is_a_kind_503():
    _, cache = expired("kept")
    down = Load(error=OperationalError("SELECT", {}, Exception("connection refused")))
    down.gate.set()
    assert cache.get("survey", "s", down) == "kept"
    with pytest.raises(Unavailable):
        cache.get("survey", "other", down)
    assert not cache.loading


def test_a_fresh_entry_counts_its_age_from_the_read():
    """The bound of FORM_CACHE_SECONDS holds from the moment SQL was read, however long the load."""
    clock = Clock()
    cache = _FormCache(clock)
    read_at = clock.now

    def slow_load():
        clock.now += 60  # SQL took a minute
        return "v"

    cache.get("survey", "s", slow_load)
    assert cache.entries[("survey", "s")][0] == read_at + forms.FORM_CACHE_SECONDS
