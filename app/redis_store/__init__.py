"""Redis: a configured server, or the embedded real redis-server under var/ (app.redis_store.embedded:
owned by the process that started it, shared with the installation's other processes)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import hiredis
import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
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

    On a RedisCluster the connection is to the master of the first key's slot (every key of one
    call must share that slot: hash tags); a MOVED reply or a broken connection (a failover, a
    resharding) refreshes the cluster's slot map before the one retry.

    `replicas` > 0 follows the script with WAIT on the same connection (WAIT counts the replicas
    holding this connection's writes): the call then returns (result, replicas that acknowledged
    within timeout_ms).
    """

    def __init__(self, script: str) -> None:
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()
        self._local = threading.local()

    def __call__(self, client, keys: Sequence, args: Sequence, *, replicas: int = 0, timeout_ms: int = 0):
        for attempt in (1, 2):
            fresh = True
            try:
                conn, fresh = self._connection(client, keys)
                try:
                    _send(conn, ("EVALSHA", self.sha, len(keys), *keys, *args))
                    result = conn.read_response()
                except NoScriptError:
                    _send(conn, ("EVAL", self.script, len(keys), *keys, *args))
                    result = conn.read_response()
                if replicas <= 0:
                    return result
                conn.send_command("WAIT", replicas, timeout_ms)
                return result, int(conn.read_response())
            except RedisConnectionError:
                self._drop(client)
                if fresh or attempt == 2:
                    raise
            except RedisTimeoutError:
                self._drop(client)
                raise
            except ResponseError as exc:
                if not str(exc).startswith(("MOVED", "ASK")) or attempt == 2:
                    raise
                self._drop(client)
        raise AssertionError("unreachable")

    def _pool(self, client, keys: Sequence):
        if isinstance(client, RedisCluster):
            return client.get_node_from_key(keys[0]).redis_connection.connection_pool
        return client.connection_pool

    def _connection(self, client, keys: Sequence):
        """(this thread's connection, whether it was made just now)."""
        pool = self._pool(client, keys)
        held: tuple[int, dict[int, tuple[Any, Any]]] | None = getattr(self._local, "held", None)
        if held is None or held[0] != os.getpid():
            held = self._local.held = (os.getpid(), {})
        conn = held[1].get(id(pool))
        if conn is not None and conn[0] is pool:
            self._local.last = id(pool)
            return conn[1], False
        # No retries with backoff inside connect: a caller with a fallback (SQL) wants to know now.
        made = pool.connection_class(**{**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)})
        made.connect()  # the class's own connect (a sentinel-managed one asks for the master)
        held[1][id(pool)] = (pool, made)
        self._local.last = id(pool)
        return made, True

    def _drop(self, client) -> None:
        """Close the connection that failed; on a cluster, re-read the slot map too."""
        held = getattr(self._local, "held", None)
        last = getattr(self._local, "last", None)
        if held is not None and held[0] == os.getpid() and last in held[1]:
            held[1].pop(last)[1].disconnect()
        if isinstance(client, RedisCluster):
            try:
                client.nodes_manager.initialize()
            except RedisError:
                pass  # no node answers: the retry fails and the caller falls back


def _send(conn, command: tuple) -> None:
    """The command packed by hiredis in one C call (str as UTF-8, as the clients encode it):
    redis-py's packer encodes each argument in Python first, ~12 us of a 20-argument script call,
    the webhook's. Any other kind of argument is redis-py's to encode (or refuse)."""
    try:
        packed = hiredis.pack_command(command)
    except TypeError:
        conn.send_command(*command)
        return
    conn.send_packed_command([packed])


def cluster_nodes(url: str) -> list[ClusterNode]:
    """The startup nodes of `redis+cluster://host:port[,host:port...]` (any of the cluster's nodes)."""
    hosts_part = url.split("://", 1)[1].split("/", 1)[0]
    nodes = []
    for item in hosts_part.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"redis.url {url!r}: expected redis+cluster://host:port[,host:port...]")
        nodes.append(ClusterNode(host, int(port)))
    return nodes


def cluster_client(url: str, *, decode: bool = True, **opts: Any) -> RedisCluster:
    opts.pop("health_check_interval", None)
    return RedisCluster(startup_nodes=cluster_nodes(url), decode_responses=decode, **opts)


def plain_clients(url: str, **opts) -> tuple[redis.Redis, redis.Redis]:
    if url.startswith("redis+sentinel://"):
        return sentinel_clients(url, **opts)
    return redis.Redis.from_url(url, decode_responses=True, **opts), redis.Redis.from_url(url, **opts)


class RedisStore:
    """Flask extension: a decoding client for services and a raw client for RQ.

    With `redis+cluster://` the services' client is a RedisCluster and RQ's raw client is a plain
    Redis at `redis.queue_url` (RQ keeps each job in several keys and moves jobs between them in
    MULTI blocks, which a cluster refuses across slots); otherwise both talk to `redis.url`,
    unless queue_url names another server for the queues.
    """

    def init_app(self, app: Flask) -> None:
        settings = app.config["SETTINGS"]
        url = redis_url(settings)
        opts: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30}
        text: redis.Redis | RedisCluster
        data: redis.Redis | RedisCluster
        if url.startswith("redis+cluster://"):
            text, data = cluster_client(url, **opts), cluster_client(url, decode=False, **opts)
            _, raw = plain_clients(settings.redis.queue_url, **opts)
        else:
            text, raw = plain_clients(url, **opts)
            data = raw
            if settings.redis.queue_url:
                _, raw = plain_clients(settings.redis.queue_url, **opts)
        queue_url = settings.redis.queue_url or url
        app.extensions["wxsurvey_redis"] = {
            "url": url, "queue_url": queue_url, "text": text, "raw": raw, "data": data, "pid": os.getpid()
        }  # fmt: skip

    @staticmethod
    def _ext() -> dict:
        return current_app.extensions["wxsurvey_redis"]

    @property
    def client(self) -> redis.Redis:
        """Text client (str in, str out) for the services: a RedisCluster with redis+cluster://."""
        return self._ext()["text"]

    @property
    def raw(self) -> redis.Redis:
        """Bytes client of the queues' Redis, as RQ requires."""
        return self._ext()["raw"]

    @property
    def data_raw(self):
        """Bytes client of the services' Redis (the cluster's, with redis+cluster://): backups."""
        return self._ext()["data"]

    @property
    def url(self) -> str:
        return self._ext()["url"]

    @property
    def queue_url(self) -> str:
        return self._ext()["queue_url"]


redis_store = RedisStore()
