"""Redis: a configured server, or the embedded real redis-server under var/ (app.redis_store.embedded:
owned by the process that started it, shared with the installation's other processes)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from app.redis_store.embedded import ensure_embedded, stop_embedded

__all__ = ["RedisStore", "ScriptRunner", "ensure_embedded", "redis_store", "redis_url", "stop_embedded"]

if TYPE_CHECKING:
    from app.config import Settings


def redis_url(settings: Settings) -> str:
    if settings.redis.url:
        return settings.redis.url
    return ensure_embedded(settings.var_dir, settings.redis.embedded_appendfsync)


def sentinel_clients(url: str, **opts) -> tuple[redis.Redis, redis.Redis]:
    """Clients for `redis+sentinel://host:port[,host:port...]/service[/db]`: they ask the sentinels
    for the current master on every (re)connection, so a failover needs no restart."""
    from redis.sentinel import Sentinel

    rest = url.split("://", 1)[1]
    hosts_part, _, path = rest.partition("/")
    service, _, db = path.partition("/")
    if not hosts_part or not service:
        raise ValueError(f"redis.url {url!r}: expected redis+sentinel://host:port[,host:port]/service[/db]")
    hosts = []
    for item in hosts_part.split(","):
        host, _, port = item.rpartition(":")
        hosts.append((host or item, int(port) if port.isdigit() else 26379))
    sentinel = Sentinel(hosts, socket_timeout=opts.get("socket_timeout", 5))
    db_number = int(db) if db.isdigit() else 0
    text = sentinel.master_for(service, db=db_number, decode_responses=True, **opts)
    raw = sentinel.master_for(service, db=db_number, **opts)
    return text, raw


class ScriptRunner:
    """One Lua script, run on a connection each thread keeps to itself.

    For a hot path's single round trip: redis-py's command layers (pool checkout, retry and
    observability wrappers, response callbacks) cost about as much CPU as the round trip itself.
    The connection is made from the client's own pool settings (URL, timeouts, decoding, health
    checks, sentinel master lookup), outside the pool's count, and ends with its thread. EVALSHA
    first, EVAL when Redis does not know the script (restarted, failed over). A broken connection
    (a Redis restarted since this thread last called, a demoted master) is replaced once; then,
    and on a timeout, the RedisError is the caller's, as from any client call.
    """

    def __init__(self, script: str) -> None:
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()
        self._local = threading.local()

    def __call__(self, client: redis.Redis, keys: Sequence, args: Sequence):
        for attempt in (1, 2):
            fresh = True
            try:
                conn, fresh = self._connection(client)
                try:
                    conn.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
                    return conn.read_response()
                except NoScriptError:
                    conn.send_command("EVAL", self.script, len(keys), *keys, *args)
                    return conn.read_response()
            except RedisConnectionError:
                self._drop()
                if fresh or attempt == 2:
                    raise
            except RedisTimeoutError:
                self._drop()
                raise
        raise AssertionError("unreachable")

    def _connection(self, client: redis.Redis):
        """(this thread's connection, whether it was made just now)."""
        pool = client.connection_pool
        held = getattr(self._local, "held", None)
        if held is not None and held[0] is pool and held[1] == os.getpid():
            return held[2], False
        # No retries with backoff inside connect: a caller with a fallback (SQL) wants to know now.
        conn = pool.connection_class(**{**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)})
        conn.connect()  # the class's own connect (a sentinel-managed one asks for the master)
        self._local.held = (pool, os.getpid(), conn)
        return conn, True

    def _drop(self) -> None:
        held, self._local.held = getattr(self._local, "held", None), None
        if held is not None and held[1] == os.getpid():
            held[2].disconnect()


class RedisStore:
    """Flask extension: a decoding client for services and a raw client for RQ."""

    def init_app(self, app: Flask) -> None:
        url = redis_url(app.config["SETTINGS"])
        opts = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30}
        if url.startswith("redis+sentinel://"):
            text, raw = sentinel_clients(url, **opts)
        else:
            text = redis.Redis.from_url(url, decode_responses=True, **opts)
            raw = redis.Redis.from_url(url, **opts)
        app.extensions["wxsurvey_redis"] = {"url": url, "text": text, "raw": raw, "pid": os.getpid()}

    @staticmethod
    def _ext() -> dict:
        return current_app.extensions["wxsurvey_redis"]

    @property
    def client(self) -> redis.Redis:
        """Text client (str in, str out) for the services."""
        return self._ext()["text"]

    @property
    def raw(self) -> redis.Redis:
        """Bytes client, as RQ requires."""
        return self._ext()["raw"]

    @property
    def url(self) -> str:
        return self._ext()["url"]


redis_store = RedisStore()
