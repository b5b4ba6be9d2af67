"""Redis: the embedded server (shared, append-only, survives restarts) and Redis Sentinel."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import threading
import time
from multiprocessing import get_context
from pathlib import Path

import pytest
import redis

from app.redis_store import ScriptRunner
from app.redis_store.embedded import ensure_embedded, redis_server_binary, stop_embedded


def _own_until_released(var: str, queue, release: str) -> None:
    queue.put((os.getpid(), ensure_embedded(var, appendfsync="always")))
    deadline = time.monotonic() + 60
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # a file, not an Event: one waiter is SIGKILLed


def running(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for a reaper does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_embedded_server_has_one_owner_shares_it_and_ends_with_it(tmp_path):
    """Concurrent starters share one server; it is its starter's child and dies with it, even
    on SIGKILL (nothing left running); the next process starts it again from its AOF."""
    var = tmp_path / "var"
    ctx = get_context("spawn")
    queue, release = ctx.Queue(), tmp_path / "release"
    children = [
        ctx.Process(target=_own_until_released, args=(str(var), queue, str(release))) for _ in range(3)
    ]
    for child in children:
        child.start()
    started = [queue.get(timeout=60) for _ in children]
    urls = {url for _, url in started}
    assert len(urls) == 1, "concurrent starters must share one server"
    url = urls.pop()
    owner = json.loads((var / "redis.owner").read_text())
    assert owner["state"] == "running" and owner["pid"] in {pid for pid, _ in started}
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        # Redis 7's default: a busy department's window hash (hundreds of prefixes) is a hash table,
        # not a list rewritten on every increment (Redis 6.2's default of 512 made each HINCRBY 4x dearer)
        assert client.config_get("hash-max-ziplist-entries")["hash-max-ziplist-entries"] == "128"
        client.xadd("wx:test", {"answer": "满意"})
        client.set("kept", "1")
        server_pid = client.info("server")["process_id"]
        os.kill(owner["pid"], signal.SIGKILL)
        wait_for(lambda: not running(server_pid))
        with pytest.raises(redis.ConnectionError):
            client.ping()
        release.touch()
        for child in children:
            child.join(timeout=30)
        assert ensure_embedded(var) == url  # this process owns it now
        assert json.loads((var / "redis.owner").read_text())["pid"] == os.getpid()
        assert client.get("kept") == "1"
        assert client.xlen("wx:test") == 1
    finally:
        release.touch()
        client.close()
        stop_embedded(var)
    assert not (var / "redis.sock").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_sentinel_url_finds_the_master(tmp_path, database_url):
    from app import create_app
    from tests.conftest import settings_for

    master_port, sentinel_port = free_port(), free_port()
    server = subprocess.Popen([redis_server_binary(), "--port", str(master_port), "--bind", "127.0.0.1",
                               "--save", "", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)  # fmt: skip
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor wxmaster 127.0.0.1 {master_port} 1\n"
    )
    sentinel = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    app = None
    try:
        wait_for(lambda: redis.Redis(port=sentinel_port).sentinel_master("wxmaster"))
        url = f"redis+sentinel://127.0.0.1:{sentinel_port}/wxmaster/3"
        app = create_app(settings_for(tmp_path, database_url, url))
        body = app.test_client().get("/readyz").get_json()
        assert body["checks"]["redis"]["ok"] is True
        with app.app_context():
            from app.redis_store import redis_store

            redis_store.client.set("through-sentinel", "是")
            assert ScriptRunner("return redis.call('INCR', KEYS[1])")(redis_store.client, ["runner"], []) == 1
        master = redis.Redis(port=master_port, db=3, decode_responses=True)
        assert master.get("through-sentinel") == "是"
        assert master.get("runner") == "1"  # the script runner's own connection found the master too
    finally:
        if app is not None:
            app.extensions["wxsurvey_db"].engine.dispose()
        for process in (sentinel, server):
            process.terminate()
            process.wait(timeout=10)


def test_bad_redis_url_is_a_config_error(tmp_path):
    from app.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="redis.url: must start with"):
        load_settings(None, environ={"WXSURVEY_REDIS_URL": "localhost:6379",
                      "WXSURVEY_APP_VAR_DIR": str(tmp_path)})  # fmt: skip


def _named(client, name: str) -> list[dict]:
    """The connections named so, but for the one asking (the client's own pool connection)."""
    return [c for c in client.client_list() if c["name"] == name and not c["cmd"].startswith("client")]


def test_script_runner_keeps_one_connection_per_thread_and_reconnects_once(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True, client_name="runner-test")
    client.delete("n")
    runner = ScriptRunner("return redis.call('INCR', KEYS[1])")
    assert [runner(client, ["n"], []) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert [c["cmd"] for c in _named(client, "runner-test")] == ["evalsha"]  # one connection
    other: list = []
    release = threading.Event()

    def in_another_thread():
        other.append(runner(client, ["n"], []))
        release.wait(10)

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    wait_for(lambda: other)
    assert other == [6] and len(_named(client, "runner-test")) == 2
    release.set()
    thread.join()
    # A thread's connection ends with it: when its thread-local data is freed, which for a
    # connection in a reference cycle (redis-py's parser and connection) is the next collection.
    wait_for(lambda: gc.collect() >= 0 and len(_named(client, "runner-test")) == 1)
    # Redis drops the connection (a restart, a proxy's idle timeout): the next call reconnects.
    for conn in _named(client, "runner-test"):
        client.client_kill_filter(_id=conn["id"])
    assert runner(client, ["n"], []) == 7
    client.script_flush()  # a Redis that forgot the script: EVAL loads it again
    assert runner(client, ["n"], []) == 8
    assert client.script_exists(runner.sha) == [True]
    client.delete("n")
    client.close()


def test_script_runner_sends_its_arguments_as_the_client_would(redis_url):
    """The runner packs its commands itself (hiredis): every kind of argument reaches the script as
    the client's own EVAL sends it, and what the client refuses is refused alike."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    script = "return {KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]}"
    args = ["满意 é", b"raw\r\n", 86400, -1.25, ""]
    assert ScriptRunner(script)(client, ["k:{x}"], args) == client.eval(script, 1, "k:{x}", *args)
    for refused in (None, [1]):
        with pytest.raises(redis.DataError):
            ScriptRunner(script)(client, ["k"], ["a", refused])
    client.close()


def test_script_runner_reports_an_unreachable_redis_as_a_redis_error():
    client = redis.Redis(port=free_port(), socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        ScriptRunner("return 1")(client, [], [])
