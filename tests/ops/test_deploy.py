"""deploy/ installed into a scratch root by deploy/install.sh (as OPERATIONS.md does it) and
checked by the tools that will run it: `systemd-analyze verify` for the units, `nginx -t` for the
site, a real redis-server and Sentinel for deploy/redis.conf and deploy/sentinel.conf, gunicorn's
own loader for deploy/gunicorn.conf.py.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from app.cli.supervisor import KEEPALIVE_SECONDS, WORKER_CLASS, web_argv
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
CI = os.environ.get("WXSURVEY_TEST_BROWSER") == "1"  # set by .ci/run, which installs nginx too
UNITS = [
    "wxsurvey-web.service",
    "wxsurvey-worker@1.service",
    "wxsurvey-worker@2.service",
    "wxsurvey-scheduler.service",
    "wxsurvey-backup.service",
    "wxsurvey-backup.timer",
    "wxsurvey.target",
]


def need(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        if CI:
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    result = subprocess.run(
        ["sh", str(DEPLOY / "install.sh")],
        env={**os.environ, "DESTDIR": str(root), "WXSURVEY_VENV": str(ROOT / ".venv")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return root


def into_root(text: str, root: Path) -> str:
    """The installed file's absolute paths moved under the scratch root."""
    prefixes = ("/opt/wxsurvey", "/etc/wxsurvey", "/var/lib/wxsurvey", "/run/wxsurvey", "/etc/ssl/wxsurvey")
    for prefix in prefixes:
        text = text.replace(prefix, f"{root}{prefix}")
    return text.replace("/var/log/nginx", f"{root}/var/log/nginx")


def test_install_lays_out_every_file(scratch_root):
    r = scratch_root
    for path in [
        "opt/wxsurvey/src/app/wsgi.py",
        "opt/wxsurvey/src/app/static/citizen.css",
        "opt/wxsurvey/venv/bin/gunicorn",
        "etc/wxsurvey/gunicorn.conf.py",
        "etc/wxsurvey/config.toml",
        "etc/wxsurvey/wxsurvey.env",
        "etc/sysusers.d/wxsurvey.conf",
        "etc/tmpfiles.d/wxsurvey.conf",
        "etc/sysctl.d/60-wxsurvey.conf",
        "etc/nginx/sites-available/wxsurvey.conf",
        "etc/redis/wxsurvey.conf",
        *[f"etc/systemd/system/{u}" for u in UNITS if "@" not in u or u.endswith("@.service")],
        "etc/systemd/system/wxsurvey-worker@.service",
    ]:
        assert (r / path).exists(), path
    assert not (r / "opt/wxsurvey/src/.venv").exists() and not (r / "opt/wxsurvey/src/.git").exists()
    env = (r / "etc/wxsurvey/wxsurvey.env").read_text()
    secret = re.search(r"^WXSURVEY_APP_SECRET_KEY=(\S+)$", env, re.M)
    assert secret and len(secret.group(1)) >= 32  # generated, not a shared default
    assert oct((r / "etc/wxsurvey/wxsurvey.env").stat().st_mode & 0o777) == "0o640"


def test_systemd_units_verify(scratch_root, tmp_path):
    tool = need("systemd-analyze")
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    for unit in (scratch_root / "etc/systemd/system").iterdir():
        (unit_dir / unit.name).write_text(into_root(unit.read_text(), scratch_root))
    # the installed venv's own executables, as ExecStart names them
    result = subprocess.run(
        [tool, "verify", *[str(unit_dir / u) for u in UNITS]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    problems = [line for line in result.stderr.splitlines() if "wxsurvey" in line]
    assert result.returncode == 0 and not problems, result.stderr
    web = (scratch_root / "etc/systemd/system/wxsurvey-web.service").read_text()
    for directive in ("User=wxsurvey", "EnvironmentFile=/etc/wxsurvey/wxsurvey.env", "NoNewPrivileges=yes",
                      "ProtectSystem=strict", "Restart=always"):  # fmt: skip
        assert directive in web


def self_signed(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "survey.example.gov.cn")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def test_nginx_site_passes_nginx_t(scratch_root, tmp_path):
    nginx = need("nginx")
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    (scratch_root / "var/log/nginx").mkdir(parents=True, exist_ok=True)
    self_signed(scratch_root / "etc/ssl/wxsurvey")
    site = prefix / "wxsurvey.conf"
    installed = scratch_root / "etc/nginx/sites-available/wxsurvey.conf"
    site.write_text(into_root(installed.read_text(), scratch_root))
    (prefix / "nginx.conf").write_text(
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  client_body_temp_path {prefix}/body;\n"
        f"  proxy_temp_path {prefix}/proxy;\n  include {site};\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "logs/e.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_gunicorn_conf_takes_the_measured_settings(scratch_root, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")},
        "WXSURVEY_CONFIG": str(tmp_path / "none.toml"),
        "WXSURVEY_APP_VAR_DIR": str(tmp_path / "var"),
        "WXSURVEY_APP_PORT": "5123",
        "WXSURVEY_APP_WEB_WORKERS": "3",
    }
    (tmp_path / "none.toml").write_text("")
    conf = scratch_root / "etc/wxsurvey/gunicorn.conf.py"
    script = (
        "from gunicorn.app.base import Application\n"
        "class A(Application):\n"
        "    def init(self, *a): pass\n"
        "    def load(self): pass\n"
        f"a = A(); a.load_config_from_file({str(conf)!r}); c = a.cfg\n"
        "print(c.bind, c.workers, c.threads, c.worker_class_str, c.reuse_port, c.graceful_timeout,\n"
        "      c.control_socket_disable, c.keepalive)\n"
    )
    out = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # 32 threads (app.web_threads): the OAuth code exchange waits on WeChat (BENCHMARKS.md, journey);
    # threads that take their own events, listening only while the worker can answer (app/ops/web_worker.py),
    # the class `wxsurvey serve` runs
    assert out.stdout.split() == ["['127.0.0.1:5123']", "3", "32", WORKER_CLASS, "True", "10", "True", "75"]


def start_redis(argv: list[str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            assert process.poll() is None, f"{argv} exited with {process.returncode}"
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"{argv} did not answer within 20 s")


def test_gunicorn_keeps_idle_connections_longer_than_nginx_keeps_its_upstream_ones():
    """nginx closes an idle upstream connection first, so it never sends a request down one that
    gunicorn is closing: both ways of running the web server (`wxsurvey serve`, the unit's conf)."""
    site = (ROOT / "deploy/nginx-wxsurvey.conf").read_text()
    upstream = re.search(r"upstream wxsurvey_web \{(.*?)\}", site, re.S)
    assert upstream is not None
    nginx_idle = re.search(r"keepalive_timeout (\d+)s;", upstream.group(1))
    assert nginx_idle is not None and "keepalive 32;" in upstream.group(1)
    argv = web_argv("127.0.0.1", 5000, 2, 32)
    assert argv[argv.index("--keep-alive") + 1] == str(KEEPALIVE_SECONDS)
    assert KEEPALIVE_SECONDS > int(nginx_idle.group(1))


def test_redis_conf_is_durable_and_sentinel_finds_its_master(scratch_root, tmp_path):
    server = need("redis-server")
    port, sentinel_port = free_port(), free_port()
    data = tmp_path / "redis"
    data.mkdir()
    conf = scratch_root / "etc/redis/wxsurvey.conf"
    master = start_redis([server, str(conf), "--port", str(port), "--dir", str(data)], port)
    sentinel = None
    try:
        client = redis.Redis(port=port, decode_responses=True)
        settings = {key: client.config_get(key)[key] for key in
                    ("appendonly", "appendfsync", "maxmemory-policy", "maxmemory")}  # fmt: skip
        assert settings == {
            "appendonly": "yes",
            "appendfsync": "everysec",
            "maxmemory-policy": "noeviction",
            "maxmemory": str(4 * 1024**3),
        }
        sentinel_conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its file: a copy of its own
        sentinel_conf.write_text(
            (DEPLOY / "sentinel.conf")
            .read_text()
            .replace("10.0.0.5 6379", f"127.0.0.1 {port}")
            .replace("port 26379", f"port {sentinel_port}")
            .replace("bind 0.0.0.0 -::*", "bind 127.0.0.1")
        )
        sentinel = start_redis(
            [server, str(sentinel_conf), "--sentinel", "--dir", str(tmp_path)], sentinel_port
        )
        from app.redis_store import sentinel_clients

        text, raw = sentinel_clients(f"redis+sentinel://127.0.0.1:{sentinel_port}/wxsurvey/0")
        text.set("wx:deploy-check", "ok")
        assert client.get("wx:deploy-check") == "ok"  # the app reached the master through Sentinel
        text.close()
        raw.close()
        client.close()
    finally:
        for process in (sentinel, master):
            if process is not None:
                process.terminate()
                process.wait(timeout=20)


def test_production_config_loads_with_the_installed_secrets(scratch_root):
    from app.config import load_settings

    env_file = (scratch_root / "etc/wxsurvey/wxsurvey.env").read_text()
    environ = dict(line.split("=", 1) for line in env_file.splitlines() if line and not line.startswith("#"))
    environ.update(
        WXSURVEY_WECHAT_APPID="wx0123456789abcdef", WXSURVEY_WECHAT_SECRET="s", WXSURVEY_WECHAT_TOKEN="t"
    )
    settings = load_settings(scratch_root / "etc/wxsurvey/config.toml", environ=environ)
    assert settings.is_production and settings.app.log_format == "json"
    assert settings.app.trusted_proxies == "127.0.0.1/32,::1/128"  # nginx on this node
    assert settings.app.metrics_token == environ["WXSURVEY_APP_METRICS_TOKEN"]
