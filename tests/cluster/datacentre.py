"""A small data centre on this machine, for `make cluster-test` (tests/cluster/test_datacentre.py).

Network namespaces (`ip netns`), one per node, each with a veth pair to a bridge that lives in a
switch namespace of its own: private addresses 10.77.0.0/24 exist only inside the namespaces,
nothing is configured in the host's namespace, and everything is removed at the end. Nodes: an
nginx load balancer, web nodes (gunicorn), worker nodes and scheduler nodes (worker.py), a
"redis" node (a Redis Cluster of three masters with a replica each, plus the plain Redis of RQ's
queues) and a "pg" node (a PostgreSQL initialised in a temporary directory).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NET = "10.77.0"
ADDRESSES = {
    "pg": 2,
    "redis": 3,
    "lb": 10,
    "web1": 11,
    "web2": 12,
    "work1": 21,
    "work2": 22,
    "sched1": 31,
    "sched2": 32,
    "client": 40,
}
REDIS_PORTS = (7001, 7002, 7003, 7004, 7005, 7006)  # inside the redis node's namespace only
QUEUE_PORT = 7010
SECRET_KEY = "cluster-test-secret-key"
RESPONDENT_SECRET = "cluster-test-respondent-secret"


def unavailable() -> str | None:
    """Why this machine cannot build the data centre, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nginx", "redis-server", "redis-cli", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "no PostgreSQL server binaries under /usr/lib/postgresql"
    probe = f"wxprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns unavailable: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


class DataCentre:
    def __init__(self, web_nodes: int = 2) -> None:
        self.tag = uuid.uuid4().hex[:5]
        self.dir = Path(tempfile.mkdtemp(prefix="wx-dc-"))
        os.chmod(self.dir, 0o755)
        self.namespaces: list[str] = []
        self.procs: dict[str, list[subprocess.Popen]] = {}
        self.pg_bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
        self.web_nodes = web_nodes
        self.killed: set[int] = set()

    # --- network --------------------------------------------------------------------------------

    def ns(self, node: str) -> str:
        return f"wx{self.tag}-{node}"

    def addr(self, node: str) -> str:
        return f"{NET}.{ADDRESSES[node]}"

    def build_network(self) -> None:
        switch = self.ns("sw")
        sh("ip", "netns", "add", switch)
        self.namespaces.append(switch)
        sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", switch, "link", "set", "br0", "up")
        for node, host in ADDRESSES.items():
            name = self.ns(node)
            sh("ip", "netns", "add", name)
            self.namespaces.append(name)
            port = f"p{host}"
            sh("ip", "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
            sh("ip", "-n", switch, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", name, "addr", "add", f"{self.addr(node)}/24", "dev", "eth0")
            sh("ip", "-n", name, "link", "set", "eth0", "up")
            sh("ip", "-n", name, "link", "set", "lo", "up")

    def cut(self, node: str) -> None:
        """Cut a node's link at the switch (its processes keep running, unreachable)."""
        sh("ip", "-n", self.ns("sw"), "link", "set", f"p{ADDRESSES[node]}", "down")

    # --- processes ------------------------------------------------------------------------------

    def spawn(
        self, node: str, argv: list[str], env: dict[str, str] | None = None, name: str = ""
    ) -> subprocess.Popen:
        log = open(
            self.dir / f"{node}-{name or Path(argv[0]).name}-{len(self.procs.get(node, []))}.log", "ab"
        )
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(node), *argv],
            env=env or os.environ.copy(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.setdefault(node, []).append(proc)
        return proc

    def run(self, node: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns(node), *argv],
            env=env or os.environ.copy(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{node}: {' '.join(argv[:3])}: {done.stderr.strip()[-1500:]}")
        return done.stdout

    def kill(self, node: str) -> None:
        """SIGKILL every process of a node (their process groups)."""
        for proc in self.procs.pop(node, []):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=20)

    def wait(self, condition, what: str, timeout: float = 60) -> float:
        started = time.monotonic()
        while True:
            try:
                if condition():
                    return time.monotonic() - started
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out waiting for {what} (logs in {self.dir})")
            time.sleep(0.2)

    # --- services -------------------------------------------------------------------------------

    def start_postgres(self) -> None:
        data = self.dir / "pgdata"
        data.mkdir()
        shutil.chown(data, "postgres", "postgres")
        sh(
            "runuser",
            "-u",
            "postgres",
            "--",
            str(self.pg_bin / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        )
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {NET}.0/24 trust\n")
        self.spawn(
            "pg",
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.pg_bin / "postgres"),
                "-D",
                str(data),
                "-c",
                f"listen_addresses={self.addr('pg')}",
                "-c",
                f"unix_socket_directories={data}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            name="postgres",
        )
        self.wait(
            lambda: (
                sh(
                    "ip",
                    "netns",
                    "exec",
                    self.ns("pg"),
                    str(self.pg_bin / "pg_isready"),
                    "-q",
                    "-h",
                    self.addr("pg"),
                ).returncode
                == 0
            ),
            "PostgreSQL",
        )

    def start_redis(self) -> None:
        host = self.addr("redis")
        for port in REDIS_PORTS:
            folder = self.dir / f"redis-{port}"
            folder.mkdir()
            self.spawn(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    host,
                    "--dir",
                    str(folder),
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                    "--protected-mode",
                    "no",
                ],
                name=f"redis{port}",
            )
        folder = self.dir / "redis-queues"
        folder.mkdir()
        self.spawn(
            "redis",
            [
                "redis-server",
                "--port",
                str(QUEUE_PORT),
                "--bind",
                host,
                "--dir",
                str(folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--protected-mode",
                "no",
            ],
            name="queues",
        )
        for port in (*REDIS_PORTS, QUEUE_PORT):
            self.wait(
                lambda p=port: "PONG" in self.run("redis", ["redis-cli", "-h", host, "-p", str(p), "ping"]),
                f"redis {port}",
            )
        self.run(
            "redis",
            [
                "redis-cli",
                "--cluster",
                "create",
                *[f"{host}:{p}" for p in REDIS_PORTS],
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            timeout=120,
        )
        self.wait(
            lambda: (
                "cluster_state:ok"
                in self.run("redis", ["redis-cli", "-h", host, "-p", "7001", "cluster", "info"])
            ),
            "cluster ok",
        )

    def alive_port(self) -> int:
        return next(p for p in REDIS_PORTS if p not in self.killed)

    def cluster(self, *args: str) -> str:
        return self.run("redis", ["redis-cli", "-h", self.addr("redis"), "-p", str(self.alive_port()), *args])

    def masters(self) -> list[int]:
        """Ports of the masters that are not failing, as the cluster sees them."""
        out = self.cluster("cluster", "nodes")
        return [
            int(line.split()[1].split(":")[1].split("@")[0])
            for line in out.splitlines()
            if "master" in line.split()[2] and "fail" not in line.split()[2]
        ]

    def kill_redis(self, port: int) -> None:
        self.killed.add(port)
        for proc in list(self.procs["redis"]):
            if str(port) in proc.args[4:]:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
                self.procs["redis"].remove(proc)

    def env(self, config: Path) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")}
        return {
            **base,
            "PYTHONPATH": str(ROOT),
            "WXSURVEY_CONFIG": str(config),
            "WXSURVEY_APP_VAR_DIR": str(self.dir / "var"),
            "WXSURVEY_APP_BASE_URL": f"http://{self.addr('lb')}:8080",
            "WXSURVEY_APP_SECRET_KEY": SECRET_KEY,
            "WXSURVEY_APP_LOG_LEVEL": "WARNING",
            "WXSURVEY_APP_WEB_WORKERS": "1",
            "WXSURVEY_SURVEY_RESPONDENT_SECRET": RESPONDENT_SECRET,
            "WXSURVEY_WECHAT_REQUIRE_WECHAT_BROWSER": "false",
            "WXSURVEY_DATABASE_URL": f"postgresql+psycopg://postgres@{self.addr('pg')}:5432/postgres",
            "WXSURVEY_REDIS_URL": "redis+cluster://"
            + ",".join(f"{self.addr('redis')}:{p}" for p in REDIS_PORTS[:3]),
            "WXSURVEY_REDIS_QUEUE_URL": f"redis://{self.addr('redis')}:{QUEUE_PORT}/0",
            "WXSURVEY_REDIS_ACK_REPLICAS": "1",
            "WXSURVEY_REDIS_ACK_TIMEOUT_MS": "200",
            "WXSURVEY_SURVEY_INTAKE_SHARDS": "4",
            # Every citizen of this test comes from one address (the client node through nginx).
            "WXSURVEY_LIMITS_SUBMISSIONS_PER_PREFIX": "0",
        }

    def start_nginx(self) -> None:
        upstreams = "\n".join(
            f"    server {self.addr(f'web{i}')}:8000 max_fails=1 fail_timeout=5s;"
            for i in range(1, self.web_nodes + 1)
        )
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
user root;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}/nginx-body;
  proxy_temp_path {self.dir}/nginx-proxy;
  upstream web {{
{upstreams}
  }}
  server {{
    listen {self.addr("lb")}:8080;
    location / {{
      proxy_pass http://web;
      proxy_connect_timeout 1s;
      proxy_read_timeout 10s;
      proxy_next_upstream error timeout;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
  }}
}}
""")
        self.spawn("lb", ["nginx", "-c", str(conf), "-p", str(self.dir), "-g", "daemon off;"], name="nginx")

    def stop(self) -> None:
        for node in list(self.procs):
            self.kill(node)
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()
        if os.environ.get("WXSURVEY_TEST_KEEP_DATACENTRE") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


PYTHON = sys.executable
