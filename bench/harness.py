# The benchmark harness every scenario module plugs into: a production-style Stack, an
# open-loop load generator in its own process, Result records and the results writer.
"""How to add a scenario module (bench/webhook.py, bench/tallies.py, ...):

    from bench.harness import Context, Result, Scenario

    def run_something(ctx: Context) -> list[Result]:
        with ctx.stack() as stack:                      # gunicorn + RQ workers + Redis + SQL
            load = ctx.load(stack.base_url, "bench.mymodule:requests", {"n": 1000},
                            rate=500, duration=5)          # open-loop, from another process
            base = ctx.baseline_load(...)                   # or ctx.bare() for the constant endpoint
        return [Result("webhook.events_per_s", load.throughput, "req/s", baseline=..., target=">= 0.5x",
                       ok=...)]

    SCENARIOS = [Scenario("webhook.scan", run_something)]

then add the module's name to SCENARIO_MODULES in bench/__main__.py. A request factory
("module:function") runs inside the load generator process: it gets (args: dict, host: str)
and returns a list of complete HTTP/1.1 requests as bytes (keep-alive), sent in order and
cycled when the run needs more requests than it returned.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench-results"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
TABLE_START = "<!-- bench:results:start -->"
TABLE_END = "<!-- bench:results:end -->"
SECRET_KEY = "bench-secret-key-not-for-production"
RESPONDENT_SECRET = "bench-respondent-secret"


# --- results ----------------------------------------------------------------------------------


@dataclass
class Result:
    """One figure, paired with a baseline measured in the same run."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    ok: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return round(self.value / self.baseline, 3)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


@dataclass
class Scenario:
    name: str
    run: Callable[[Context], list[Result]]


def machine_info() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_results(results: list[Result], *, quick: bool, out_dir: Path = RESULTS_DIR) -> Path:
    """Write bench-results/<stamp>.json and latest.json (merged by name), then the BENCHMARKS.md table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = {"machine": machine, "quick": quick, "results": [r.as_dict() for r in results]}
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps(run, ensure_ascii=False, indent=2))
    latest_path = out_dir / "latest.json"
    merged: dict[str, dict[str, Any]] = {}
    if latest_path.exists():
        with contextlib.suppress(ValueError, KeyError):
            merged = {r["name"]: r for r in json.loads(latest_path.read_text())["results"]}
    for record in run["results"]:
        merged[record["name"]] = {**record, "machine": machine, "quick": quick}
    latest = {"updated": machine["date"], "results": sorted(merged.values(), key=lambda r: r["name"])}
    latest_path.write_text(json.dumps(latest, ensure_ascii=False, indent=2))
    write_table(latest["results"])
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def write_table(records: list[dict[str, Any]], md: Path = BENCHMARKS_MD) -> None:
    """Write these figures into the table between the markers in BENCHMARKS.md, keeping the prose
    around it and the rows of figures this run did not measure (the committed table is the
    record: bench-results/ is local to one checkout)."""
    text = md.read_text() if md.exists() else "# Benchmarks\n\nWritten by `make bench`.\n\n"
    rows: dict[str, str] = {}
    if TABLE_START in text and TABLE_END in text:
        for line in text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].splitlines()[3:]:
            name = line.split("|")[1].strip() if line.startswith("|") else ""
            if name:
                rows[name] = line
    for r in records:
        m = r.get("machine", {})
        machine = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB"
        base = f"{_fmt(r.get('baseline'))} ({r.get('baseline_name') or '–'})"
        met = {True: "yes", False: "**NO**", None: "–"}[r.get("ok")]
        quick = " (quick)" if r.get("quick") else ""
        rows[r["name"]] = (
            f"| {r['name']} | {_fmt(r['value'])} | {r['unit']} | {base} | {_fmt(r.get('ratio'))} "
            f"| {r.get('target') or '–'} | {met} | {machine} | {m.get('date', '?')}{quick} |"
        )
    table = "\n".join([
        TABLE_START,
        "| figure | value | unit | baseline (same run) | ratio | target | met | machine | date |",
        "|---|---:|---|---|---:|---|---|---|---|",
        *(rows[name] for name in sorted(rows)),
        TABLE_END,
    ])  # fmt: skip
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        text = head + table + rest.split(TABLE_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    md.write_text(text)


# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def gunicorn_argv(wsgi: str, port: int, workers: int, threads: int) -> list[str]:
    """The production gunicorn settings (app.cli.supervisor.web_argv), without the access log."""
    from app.cli.supervisor import web_argv

    argv = web_argv("127.0.0.1", port, workers, threads)
    argv[argv.index("app.wsgi:app")] = wsgi
    i = argv.index("--access-logfile")
    del argv[i : i + 2]
    return argv


def _web_default(key: str) -> int:
    """The production default (app.web_workers / app.web_threads) the stack and the bare server use,
    unless WXSURVEY_BENCH_WEB_WORKERS / WXSURVEY_BENCH_WEB_THREADS say otherwise (comparisons)."""
    from app.config import AppSettings

    return int(os.environ.get(f"WXSURVEY_BENCH_{key.upper()}") or getattr(AppSettings(), key))


class Stack:
    """The production-style stack in a temporary directory: gunicorn (app.ops.web_worker), RQ workers
    (worker.py), a Redis server (the embedded redis-server, or WXSURVEY_BENCH_REDIS_URL) and
    SQLite (or a fresh schema in the PostgreSQL of WXSURVEY_BENCH_DATABASE_URL).

    `stack.env` holds the WXSURVEY_* variables any other process needs to reach the same data;
    `stack.app()` builds an app in this process bound to it (for setup and counting).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        web_workers: int | None = None,
        web_threads: int | None = None,
        rq_workers: int = 1,
        rq_queues: str = "intake,wechat,default,exports",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.web_workers, self.web_threads, self.rq_workers, self.rq_queues = (
            web_workers or _web_default("web_workers"),
            web_threads or _web_default("web_threads"),
            rq_workers,
            rq_queues,
        )
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._pg_schema: str | None = None
        self._pg_admin_url = database_url
        self.database_url = self._database(database_url)
        self._embedded = not redis_url
        self.redis_url = redis_url or ""
        self.env: dict[str, str] = {
            **{k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")},
            "PYTHONUNBUFFERED": "1",
            "WXSURVEY_APP_MODE": "dev",
            "WXSURVEY_APP_VAR_DIR": str(self.workdir / "var"),
            "WXSURVEY_APP_BASE_URL": self.base_url,
            "WXSURVEY_APP_SECRET_KEY": SECRET_KEY,
            "WXSURVEY_APP_LOG_LEVEL": "WARNING",
            "WXSURVEY_SURVEY_RESPONDENT_SECRET": RESPONDENT_SECRET,
            "WXSURVEY_DATABASE_URL": self.database_url,
            "WXSURVEY_WECHAT_REQUIRE_WECHAT_BROWSER": "false",
            "WXSURVEY_APP_TRUSTED_PROXIES": "127.0.0.1/32",  # the load generator stands for nginx
            **(settings or {}),
        }
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._app = None

    def _database(self, url: str | None) -> str:
        if not url:
            return f"sqlite:///{self.workdir / 'bench.db'}"
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        self._pg_schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self._pg_schema}"'))
        admin.dispose()
        # application_name: the bench finds this stack's backends (their CPU) by it.
        scoped = make_url(url).update_query_dict(
            {"options": f"-csearch_path={self._pg_schema}", "application_name": self._pg_schema}
        )
        return scoped.render_as_string(hide_password=False)

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen:
        with open(self.workdir / f"{log_name}.log", "ab") as log:
            return subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> Stack:
        from app.redis_store.embedded import ensure_embedded

        if self._embedded:  # as deployed (deploy/redis.conf), unless WXSURVEY_BENCH_APPENDFSYNC says
            fsync = os.environ.get("WXSURVEY_BENCH_APPENDFSYNC") or "everysec"
            self.redis_url = ensure_embedded(self.workdir / "var", appendfsync=fsync)
        self.env["WXSURVEY_REDIS_URL"] = self.redis_url
        # `python -c` from the work tree: the code of this checkout, whatever the venv's install points at.
        wxsurvey = [sys.executable, "-c", "from app.cli import main; main()"]
        for command in (["init"], ["demo"]):
            done = subprocess.run(
                [*wxsurvey, *command], env=self.env, cwd=ROOT, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise RuntimeError(f"wxsurvey {command[0]} failed: {done.stderr.strip()[-500:]}")
        argv = gunicorn_argv("app.wsgi:app", self.port, self.web_workers, self.web_threads)
        self.web = self._spawn(argv, "web")
        for i in range(self.rq_workers):
            self.start_worker(i)
        wait_until(lambda: http_ok(self.base_url + "/healthz"), 60, "gunicorn /healthz")
        return self

    def start_worker(self, index: int | None = None) -> subprocess.Popen:
        index = len(self.workers) if index is None else index
        name = f"bench-{index}-{uuid.uuid4().hex[:6]}"
        argv = [sys.executable, str(ROOT / "worker.py"), "--queues", self.rq_queues, "--name", name]
        proc = self._spawn(argv, f"worker{index}")
        self.workers.append(proc)
        return proc

    def app(self):
        """A Flask app of this process on the stack's database and Redis."""
        if self._app is None:
            from app import create_app
            from app.config import load_settings

            env = {k: v for k, v in self.env.items() if k.startswith("WXSURVEY_")}
            empty = self.workdir / "empty.toml"
            empty.touch()
            self._app = create_app(load_settings(empty, environ=env))
        return self._app

    def stop(self) -> None:
        for proc in [self.web, *self.workers]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [self.web, *self.workers]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._app is not None:
            self._app.extensions["wxsurvey_db"].engine.dispose()
        if self._embedded:
            from app.redis_store.embedded import stop_embedded

            stop_embedded(self.workdir / "var")
        if self._pg_schema and self._pg_admin_url:
            from sqlalchemy import create_engine, text

            admin = create_engine(self._pg_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{self._pg_schema}" CASCADE'))
            admin.dispose()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class BareServer:
    """The baseline: a constant endpoint (bench.bare:app) under the same gunicorn settings."""

    def __init__(
        self, workdir: Path, web_workers: int | None = None, web_threads: int | None = None,
        redis_url: str | None = None,
    ) -> None:  # fmt: skip
        web_workers, web_threads = (
            web_workers or _web_default("web_workers"),
            web_threads or _web_default("web_threads"),
        )
        self.env = {**os.environ, **({"WXSURVEY_BENCH_BARE_REDIS_URL": redis_url} if redis_url else {})}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.argv = gunicorn_argv("bench.bare:app", self.port, web_workers, web_threads)
        self.workdir = Path(workdir)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> BareServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "bare.log", "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(lambda: http_ok(self.base_url + "/"), 30, "the bare endpoint")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Load:
    """What the load generator measured. Latencies run from each request's *intended* send time
    (open loop), so a stalled server shows up in them instead of slowing the generator down."""

    sent: int
    completed: int
    errors: int
    statuses: dict[str, int]
    duration_s: float
    throughput: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    rate: float | None
    last_completed_at: float  # time.time() of the last response
    cpu_s: float = 0.0  # the load generator's own CPU seconds during the run

    @property
    def cpu_share(self) -> float:
        """The generator's CPU use as a fraction of one core over the run."""
        return round(self.cpu_s / self.duration_s, 2) if self.duration_s else 0.0


def run_load(
    base_url: str,
    factory: str,
    args: dict[str, Any] | None = None,
    *,
    rate: float | None = None,
    duration: float = 5.0,
    count: int | None = None,
    connections: int = 32,
    timeout: float = 600.0,
) -> Load:
    """Drive base_url from a separate process (bench/loadgen.py).

    rate: requests per second, open loop (None: closed loop, as fast as `connections` allow);
    count: total requests (default rate*duration, or unbounded for closed loop within duration).
    """
    spec = {
        "url": base_url,
        "factory": factory,
        "args": args or {},
        "rate": rate,
        "duration": duration,
        "count": count,
        "connections": connections,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()[-1500:]}")
    return Load(**json.loads(done.stdout))


# --- profiles -----------------------------------------------------------------------------------


def py_spy_record(pid: int, seconds: float, out: Path) -> Path | None:
    """Sample a running process with py-spy (when installed) into a flame graph SVG; None if not."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--subprocesses",
         "--format", "speedscope", "--output", str(out), "--nonblocking"],
        capture_output=True, text=True,
    )  # fmt: skip
    return out if done.returncode == 0 and out.exists() else None


# --- the run ------------------------------------------------------------------------------------


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


@dataclass
class Context:
    """What a scenario gets: the mode, a scratch directory and the engines to run on."""

    quick: bool
    workdir: Path
    database_url: str | None = field(default_factory=lambda: _env("WXSURVEY_BENCH_DATABASE_URL"))
    redis_url: str | None = field(default_factory=lambda: _env("WXSURVEY_BENCH_REDIS_URL"))
    profiles_dir: Path = RESULTS_DIR / "profiles"

    def scratch(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        return path

    def stack(self, name: str = "stack", **options: Any) -> Stack:
        options.setdefault("database_url", self.database_url)
        options.setdefault("redis_url", self.redis_url)
        return Stack(self.scratch(name), **options)

    def bare(self, **options: Any) -> BareServer:
        return BareServer(self.scratch("bare"), **options)

    load = staticmethod(run_load)


def run_scenarios(scenarios: list[Scenario], *, quick: bool, only: list[str] | None = None) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="wxsurvey-bench-") as tmp:
        ctx = Context(quick=quick, workdir=Path(tmp))
        for scenario in scenarios:
            if only and not any(scenario.name == o or scenario.name.startswith(o + ".") for o in only):
                continue
            print(f"[bench] {scenario.name} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            for result in scenario.run(ctx):
                results.append(result)
                met = {True: "ok", False: "MISSED", None: ""}[result.ok]
                print(
                    f"[bench]   {result.name}: {_fmt(result.value)} {result.unit}"
                    f" (baseline {_fmt(result.baseline)}, ratio {_fmt(result.ratio)}) {result.target} {met}",
                    file=sys.stderr,
                    flush=True,
                )
            print(f"[bench]   done in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return results
