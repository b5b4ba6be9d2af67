"""The per-process cache of survey forms and departments at campaign peak: one reader per key
goes to SQL when an entry expires, the others go on with the entry they had, and nobody is
left without an answer or given one that is not the load's."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from app.errors import NotFound, Unavailable
from app.intake import forms
from app.intake.forms import _FormCache


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
        assert self.gate.wait(10), "the test never opened the gate"
        if self.error is not None:
            raise self.error
        return self.value


def in_threads(count: int, target) -> tuple[list, list[threading.Thread]]:
    results: list = []

    def run():
        try:
            results.append(target())
        except Exception as exc:  # noqa: BLE001 - the test reads what each thread got
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return results, threads


def expire(cache: _FormCache) -> None:
    for key, (_, value) in list(cache.entries.items()):
        cache.entries[key] = (time.monotonic() - 1, value)


def test_an_expired_entry_is_read_once_while_the_others_go_on_with_it():
    cache = _FormCache()
    cache.get("survey", "s", lambda: "old")
    expire(cache)
    load = Load("new")
    reloader = threading.Thread(target=lambda: cache.get("survey", "s", load))
    reloader.start()
    assert load.entered.wait(10)
    results, threads = in_threads(20, lambda: cache.get("survey", "s", load))
    for thread in threads:
        thread.join(10)
    assert results == ["old"] * 20  # served at once, from the entry they had, while SQL is read
    load.gate.set()
    reloader.join(10)
    assert load.calls == 1
    assert cache.get("survey", "s", load) == "new"
    assert load.calls == 1 and not cache.loading


def test_the_first_readers_of_a_key_wait_for_one_load():
    cache = _FormCache()
    load = Load("first")
    results, threads = in_threads(20, lambda: cache.get("survey", "s", load))
    assert load.entered.wait(10)
    load.gate.set()
    for thread in threads:
        thread.join(10)
    assert results == ["first"] * 20
    assert load.calls == 1


def test_a_key_that_is_not_found_is_not_cached_and_every_waiter_hears_so():
    cache = _FormCache()
    load = Load(error=NotFound("没有找到这项调查，请重新扫描二维码。"))
    results, threads = in_threads(5, lambda: cache.get("survey", "forged", load))
    assert load.entered.wait(10)
    load.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 5 and all(isinstance(r, NotFound) for r in results)
    assert not cache.entries and not cache.loading


def test_sql_down_serves_the_expired_entry_and_a_new_key_is_a_kind_503():
    cache = _FormCache()
    cache.get("survey", "s", lambda: "kept")
    expire(cache)
    down = Load(error=OperationalError("SELECT", {}, Exception("connection refused")))
    down.gate.set()
    assert cache.get("survey", "s", down) == "kept"
    with pytest.raises(Unavailable):
        cache.get("survey", "other", down)
    assert not cache.loading


def test_a_fresh_entry_counts_its_age_from_the_read(monkeypatch):
    """The bound of FORM_CACHE_SECONDS holds from the moment SQL was read, however long the load."""
    cache = _FormCache()
    now = [100.0]
    monkeypatch.setattr(forms.time, "monotonic", lambda: now[0])

    def slow_load():
        now[0] += 60  # SQL took a minute
        return "v"

    cache.get("survey", "s", slow_load)
    assert cache.entries[("survey", "s")][0] == 100.0 + forms.FORM_CACHE_SECONDS
