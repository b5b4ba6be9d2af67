"""Test fixtures: real Redis (embedded, or WXSURVEY_TEST_REDIS_URL) and real SQL (SQLite, and
PostgreSQL when WXSURVEY_TEST_DATABASE_URL is set: every test using `app` then runs on both).

The intake tests (tests/intake/) also run against a Redis Cluster of three masters that the
suite starts (redis-server processes, tests/redis_servers.py) and stops at the end: `redis_kind`
is "single" or "cluster"; on the cluster RQ's queues live on the single Redis (`queue_url`).
WXSURVEY_TEST_CLUSTER=0 leaves the cluster runs out.

Each xdist worker gets its own SQLite file, its own PostgreSQL schema and its own Redis
database; tables are emptied and Redis flushed before every test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.config import load_settings
from app.migrate import upgrade
from app.models import Base
from chaos.stack import wait_for_no_processes_with_env

for _name in list(os.environ):
    if _name.startswith("WXSURVEY_") and not _name.startswith("WXSURVEY_TEST_"):
        del os.environ[_name]

# Every process the suite starts inherits this mark (run_cli keeps it: it is no WXSURVEY_ key),
# even one that daemonizes; at the end the controller lists the marked processes still running.
SUITE_MARK = "PYTEST_WXSURVEY_RUN"
os.environ.setdefault(SUITE_MARK, uuid.uuid4().hex)

PG_URL = os.environ.get("WXSURVEY_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("WXSURVEY_TEST_REDIS_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """No stray processes: once the tests (and xdist's workers) are done, nothing the suite
    started may still run, embedded redis-servers included, whether tests passed, failed or
    were interrupted. Any left are listed, killed, and the run fails."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not Path("/proc/self/environ").exists():
        return
    left = wait_for_no_processes_with_env(f"{SUITE_MARK}={os.environ[SUITE_MARK]}", timeout=20)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {pid}: {command}" for pid, command in left]
    message = "processes started by the suite still running after it ended (killed now):\n"
    if reporter is not None:
        reporter.write_line("\n" + message + "\n".join(lines), red=True)
    for pid, _ in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def worker_index(config) -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name[2:].isdigit() else 0


# The tests that also run on a Redis Cluster (WXSURVEY_TEST_CLUSTER_ALSO adds folders, comma-separated).
CLUSTER_TESTS = ("tests/intake/", "tests/wechat/test_wechat_webhook.py") + tuple(
    f for f in os.environ.get("WXSURVEY_TEST_CLUSTER_ALSO", "").split(",") if f
)
WITH_CLUSTER = os.environ.get("WXSURVEY_TEST_CLUSTER", "1") != "0"

# The view tests of the routes the WSGI fast paths answer run with the layer on and off
# (app/fast/CONTRACT.md): the same assertions hold either way. A test module elsewhere opts in
# with FAST_LAYER_BOTH_WAYS = True.
FAST_LAYER_DIRS = ("public", "wechat")  # tests/fast compares the layer with the views itself


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, scope="session")
    if "redis_kind" in metafunc.fixturenames and WITH_CLUSTER:
        where = Path(str(metafunc.definition.path)).as_posix()
        if any(f"/{folder}" in where for folder in CLUSTER_TESTS):
            metafunc.parametrize("redis_kind", ["single", "cluster"])
    if "fast_layer" in metafunc.fixturenames and (
        Path(str(metafunc.definition.path)).parent.name in FAST_LAYER_DIRS
        or getattr(metafunc.module, "FAST_LAYER_BOTH_WAYS", False)
    ):
        metafunc.parametrize("fast_layer", [True, False], ids=["fast", "flask"])


@pytest.fixture
def fast_layer() -> bool:
    """Whether the app under test has the WSGI fast paths in front of Flask (app.fast_paths)."""
    return True


# --- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_kind() -> str:
    """single, unless the test is one of CLUSTER_TESTS (then parametrised: single, cluster)."""
    return "single"


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory, request):
    """Three cluster-enabled redis-server masters of this worker's own, for the whole session."""
    from tests.redis_servers import Cluster

    cluster = Cluster(tmp_path_factory.mktemp("cluster"), worker_index(request.config))
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_url(redis_kind, queue_url, request) -> str:
    """The services' Redis: the single one, or a redis+cluster:// URL of the suite's cluster
    (function-scoped: a session-scoped one would outlive the parametrised redis_kind it came from)."""
    if redis_kind == "cluster":
        return request.getfixturevalue("redis_cluster").url
    return queue_url


@pytest.fixture(scope="session")
def queue_url(tmp_path_factory, request) -> Iterator[str]:
    """A real single Redis (RQ's, and the services' too unless on the cluster): the configured
    server (a db number of this worker's own) or an embedded one."""
    if REDIS_URL:
        url = make_url_with_db(REDIS_URL, 9 + worker_index(request.config))
        client = redis.Redis.from_url(url)
        client.ping()  # fail, don't skip, when the CI server is unreachable
        client.flushdb()
        yield url
        client.flushdb()
        client.close()
        return
    from app.redis_store.embedded import ensure_embedded, stop_embedded

    var = tmp_path_factory.mktemp("redis")
    url = ensure_embedded(var, appendfsync="no")
    yield url
    stop_embedded(var)


def make_url_with_db(url: str, db: int) -> str:
    base = url.split("?", 1)[0]
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{db}"


def redis_for(url: str):
    """A decoding client for a Redis URL of the app's kinds (redis+cluster:// included)."""
    if url.startswith("redis+cluster://"):
        from app.redis_store import cluster_client

        return cluster_client(url)
    return redis.Redis.from_url(url, decode_responses=True)


def all_keys(client, pattern: str) -> list[str]:
    """KEYS on every master of a cluster (a RedisCluster asks one node only), or on the one Redis."""
    if isinstance(client, redis.RedisCluster):
        return [k for node in client.get_primaries() for k in node.redis_connection.keys(pattern)]
    return client.keys(pattern)


@pytest.fixture
def redis_client(redis_url, queue_url) -> Iterator[redis.Redis]:
    client = redis_for(redis_url)
    client.flushdb()
    if queue_url != redis_url:
        with redis.Redis.from_url(queue_url) as queues:
            queues.flushdb()
    yield client
    client.close()


# --- SQL -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url(backend, tmp_path_factory, request) -> Iterator[str]:
    """A migrated, empty database of this worker's own on the given backend."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "test.db"
        url = f"sqlite:///{path}"
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    schema = f"wx_{worker_index(request.config)}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # fails (not skips) when the server is unreachable
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    engine = create_engine(url_text)
    upgrade(engine)
    engine.dispose()
    yield url_text
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def empty_tables(engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


# --- the app ---------------------------------------------------------------------------------------


def settings_for(tmp_path: Path, database_url: str, redis_url: str, queue_url: str = "", **sections):
    """Settings isolated from the developer's environment and config file."""
    config = tmp_path / "config.toml"
    if not config.exists():
        config.write_text("")
    queues = {"queue_url": queue_url} if queue_url and queue_url != redis_url else {}
    overrides = {
        "app": {"var_dir": str(tmp_path / "var"), "base_url": "http://wx.test", **sections.pop("app", {})},
        "database": {"url": database_url, **sections.pop("database", {})},
        "redis": {"url": redis_url, **queues, **sections.pop("redis", {})},
        # The simulator keeps WeChat's latency here, not its rare random failures (tests set those).
        "wechat": {"simulator_error_rate": "", **sections.pop("wechat", {})},
        **sections,
    }
    return load_settings(config, environ={}, overrides=overrides)


@pytest.fixture
def app(tmp_path, database_url, redis_client, redis_url, queue_url, fast_layer):
    app = create_app(
        settings_for(tmp_path, database_url, redis_url, queue_url, app={"fast_paths": fast_layer})
    )
    app.config["TESTING"] = True
    database = app.extensions["wxsurvey_db"]
    empty_tables(database.engine)
    with app.app_context():
        from app.org.surveys import sync_templates

        sync_templates(database.session)
        database.session.commit()
    yield app
    database.session.remove()
    database.engine.dispose()


@contextmanager
def demo_app(tmp_path: Path, database_url: str, redis_url: str, queue_url: str = "", **sections):
    """An app of its own with these settings and the demo loaded (its tables emptied first)."""
    from app.org.demo import load_demo

    app = create_app(settings_for(tmp_path, database_url, redis_url, queue_url, **sections))
    database = app.extensions["wxsurvey_db"]
    empty_tables(database.engine)
    with app.app_context():
        load_demo(database.session, app.config["SETTINGS"].var_dir)
        database.session.commit()
    try:
        yield app
    finally:
        database.session.remove()
        database.engine.dispose()


@pytest.fixture
def session(app):
    with app.app_context():
        from app.db import db

        yield db.session


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def cli_env(app, database_url, redis_url, queue_url, tmp_path) -> dict[str, str]:
    """Environment pointing a `run_cli` subprocess at this test's database, Redis and var dir."""
    return {
        "WXSURVEY_DATABASE_URL": database_url,
        "WXSURVEY_REDIS_URL": redis_url,
        "WXSURVEY_REDIS_QUEUE_URL": queue_url if queue_url != redis_url else "",
        "WXSURVEY_APP_VAR_DIR": str(tmp_path / "var"),
        "WXSURVEY_CONFIG": str(tmp_path / "config.toml"),
    }


@pytest.fixture
def demo(app, session):
    """The demo org chart and its open surveys."""
    from app.org.demo import load_demo

    info = load_demo(session, app.config["SETTINGS"].var_dir)
    session.commit()
    return info


class LiveServer:
    def __init__(self, app) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    """The app served over real HTTP on loopback, in a thread of this process."""
    with LiveServer(app) as server:
        yield server


# --- the browser -----------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium through Playwright; skipped when absent unless WXSURVEY_TEST_BROWSER=1."""
    required = os.environ.get("WXSURVEY_TEST_BROWSER") == "1"
    if CHROMIUM is None:
        if required:
            pytest.fail("WXSURVEY_TEST_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def artifacts() -> Path:
    """Where tests save screenshots and other files for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None, cwd: Path | None = None):
    """Run the installed `wxsurvey` command in a subprocess, as a user would."""
    exe = ROOT / ".venv" / "bin" / "wxsurvey"
    command = [str(exe)] if exe.exists() else [shutil.which("wxsurvey") or "wxsurvey"]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")}
    base_env["PYTHONPATH"] = str(ROOT)  # this checkout's code, whichever checkout the venv was installed from
    return subprocess.run(
        command + list(args),
        env={**base_env, **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
