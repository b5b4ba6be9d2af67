"""The production-style stack as deploy/ runs it: gunicorn with deploy/gunicorn.conf.py (2 worker
processes), an RQ worker, the cron scheduler, Prometheus multiprocess mode and JSON logs. A small
load goes through the real paths (WeChat scans, OAuth and submissions, the drain, a token refresh,
an export); then /metrics must show each metric with the right value, and the logs of the whole
run must be JSON lines that carry no openid, secret or token.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis as redis_lib
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.config import load_settings
from app.redis_store.embedded import ensure_embedded, stop_embedded
from tests.conftest import ROOT, run_cli
from tests.ops.test_deploy import free_port

pytestmark = pytest.mark.slow
WECHAT_UA = "Mozilla/5.0 (Linux; Android 13) Mobile Safari/537.36 MicroMessenger/8.0.47.2560 NetType/WIFI"
URL = "/q/demo-departments/D08"


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.metrics_token = secrets.token_urlsafe(24)
        self.redis_url = ensure_embedded(tmp / "redis", appendfsync="no")
        (tmp / "metrics").mkdir()
        (tmp / "config.toml").write_text(
            '[[exports.schedules]]\nname = "nightly"\ninterval = 86400\nsurvey = "demo-departments"\n'
            'group_by = "department"\nformat = "csv"\n'
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")},
            "PYTHONPATH": str(ROOT),
            "WXSURVEY_CONFIG": str(tmp / "config.toml"),
            "WXSURVEY_DATABASE_URL": f"sqlite:///{tmp / 'wx.db'}",
            "WXSURVEY_REDIS_URL": self.redis_url,
            "WXSURVEY_APP_VAR_DIR": str(tmp / "var"),
            "WXSURVEY_EXPORTS_DIR": str(tmp / "exports"),
            "WXSURVEY_APP_BASE_URL": self.base,
            "WXSURVEY_APP_PORT": str(self.port),
            "WXSURVEY_APP_WEB_THREADS": "2",
            "WXSURVEY_APP_LOG_FORMAT": "json",
            "WXSURVEY_APP_METRICS_TOKEN": self.metrics_token,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        }
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, name: str, argv: list[str]) -> None:
        out = self.tmp / f"{name}.log"
        self.logs.append(out)
        with out.open("wb") as fh:
            self.processes.append(
                subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT)
            )

    def cli(self, *args: str) -> str:
        result = run_cli(*args, env={k: v for k, v in self.env.items() if k.startswith("WXSURVEY_")})
        assert result.returncode == 0, result.stderr
        self.logs.append(self.tmp / f"cli-{args[0]}.log")
        self.logs[-1].write_text(result.stderr)  # stdout is the command's output, not a log
        return result.stdout

    def wait_until(self, condition, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for process in self.processes:
                assert process.poll() is None, f"{process.args} exited; logs: {self.tail()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; logs: {self.tail()}"
            time.sleep(0.1)

    def tail(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in self.logs if p.exists())

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stop_embedded(self.tmp / "redis")


@pytest.fixture
def stack(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.cli("init")
        stack.cli("demo")
        stack.start("web", [str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "deploy/gunicorn.conf.py"),
                            "app.wsgi:app"])  # fmt: skip
        stack.start("worker", [sys.executable, str(ROOT / "worker.py"), "--name", "stack-worker"])
        stack.start("scheduler", [sys.executable, str(ROOT / "worker.py"), "--cron"])

        def up() -> bool:
            try:
                return requests.get(stack.base + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        stack.wait_until(up, "gunicorn to answer /healthz")
        # /healthz proves one worker serves (a worker still loading has no socket yet, app/ops/web_worker.py);
        # the load below is meant to reach both, as in production.
        workers = load_settings(Path(stack.env["WXSURVEY_CONFIG"]), environ=stack.env).app.web_workers
        log = stack.tmp / "web.log"
        stack.wait_until(lambda: log.read_text().count("Worker ready to serve") >= workers, "every worker")
        assert "Control socket" not in log.read_text()  # (gunicornc's: off, deploy/gunicorn.conf.py)
        yield stack
    finally:
        stack.stop()


def scan(stack: Stack, wechat, openid: str, **seal_args) -> requests.Response:
    from app.dev.wechat_server import event_xml, seal

    sealed = seal(event_xml("gh_0123456789ab", openid, "SCAN", "d:D08"), wechat, "safe", **seal_args)
    return requests.post(f"{stack.base}/wechat?{urlencode(sealed.params)}", data=sealed.body, timeout=10)


def answer_form(html: str, token: str | None = None) -> dict[str, str]:
    form_token = token or re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    data = {"form_token": form_token, "q_respondent_type": "enterprise"}
    for key in ("overall", "service_attitude", "efficiency", "openness", "integrity"):
        data[f"q_{key}"] = "satisfied"
    return data


def scrape(stack: Stack) -> dict[tuple[str, tuple], float]:
    reply = requests.get(
        stack.base + "/metrics", headers={"Authorization": f"Bearer {stack.metrics_token}"}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_after_a_small_load_and_logs_without_secrets(stack):
    settings = load_settings(Path(stack.env["WXSURVEY_CONFIG"]), environ=stack.env)
    wechat = settings.wechat
    secrets_seen: set[str] = {stack.metrics_token, settings.app.secret_key, settings.survey.respondent_secret,
                              wechat.secret, wechat.token, wechat.encoding_aes_key}  # fmt: skip

    # WeChat: 4 scans by different followers, one retried by WeChat, one forged.
    scanners = [f"oSTACKscan{secrets.token_hex(6)}" for _ in range(4)]
    secrets_seen.update(scanners)
    for openid in scanners:
        assert scan(stack, wechat, openid).status_code == 200
    retry = scan(stack, wechat, scanners[0])  # same sender and CreateTime second: a retry
    assert retry.status_code == 200
    forged = requests.post(f"{stack.base}/wechat?signature=0&timestamp={int(time.time())}&nonce=1",
                           data=b"<xml></xml>", timeout=10)  # fmt: skip
    assert forged.status_code == 403

    # Citizens: 3 through WeChat's OAuth (the simulator's), each answers once; one sends the form
    # again (resent), one opens it again and answers twice (already), one posts a forged token.
    people = []
    for _ in range(3):
        person = requests.Session()
        person.headers["User-Agent"] = WECHAT_UA
        page = person.get(stack.base + URL, timeout=10)
        assert page.status_code == 200 and "form_token" in page.text, stack.tail()
        secrets_seen.add(person.cookies.get("wxsim_openid", path="/dev"))
        secrets_seen.update(c.value for c in person.cookies if c.name != "wxsim_openid")
        done = person.post(stack.base + URL, data=answer_form(page.text), timeout=10)
        assert done.status_code == 200 and "感谢" in done.text
        people.append((person, page.text))
    first, page = people[0]
    assert first.post(stack.base + URL, data=answer_form(page), timeout=10).status_code == 200  # resent
    second, _ = people[1]
    from app.intake import issue_form_token  # a second, valid form of the same person's

    other_form = answer_form("", token=issue_form_token(settings.app.secret_key, time.time() - 30))
    assert second.post(stack.base + URL, data=other_form, timeout=10).status_code == 409
    third, _ = people[2]
    assert (
        third.post(stack.base + URL, data=answer_form("", token="forged.token"), timeout=10).status_code
        == 400
    )

    # The worker: the drain (enqueued by the submissions), a token refresh and an export.
    def drained() -> bool:
        with sqlite3.connect(stack.tmp / "wx.db") as conn:
            return conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 3

    stack.wait_until(drained, "the drain to store 3 responses")
    from rq import Queue

    raw = redis_lib.Redis.from_url(stack.redis_url)
    Queue("wechat", connection=raw).enqueue("app.jobs.wechat.refresh_access_token")
    Queue("exports", connection=raw).enqueue("app.jobs.exports.run_scheduled_export", "nightly")
    client = redis_lib.Redis.from_url(stack.redis_url, decode_responses=True)
    stack.wait_until(lambda: list((stack.tmp / "exports").glob("nightly/*.csv")), "the export file")
    stack.wait_until(lambda: client.get("wx:api:access_token"), "the token refresh")
    secrets_seen.add(client.get("wx:api:access_token"))
    secrets_seen.update(k.rsplit(":", 1)[1] for k in client.keys("wx:sim:token:*"))

    assert requests.get(stack.base + "/metrics", timeout=10).status_code == 404  # no token: nothing there

    def settled() -> bool:
        s = scrape(stack)
        return (
            value(s, "wxsurvey_export_runs_total", result="written") == 1
            and value(s, "wxsurvey_wechat_token_refreshes_total", trigger="scheduled") == 1
        )

    stack.wait_until(settled, "the worker's counters")
    s = scrape(stack)
    assert value(s, "wxsurvey_submissions_total", outcome="accepted", reason="", degraded="false") == 3
    assert value(s, "wxsurvey_submissions_total", outcome="resent", reason="", degraded="false") == 1
    assert value(s, "wxsurvey_submissions_total", outcome="already", reason="", degraded="false") == 1
    assert (
        value(s, "wxsurvey_submissions_total", outcome="refused", reason="form_token", degraded="false") == 1
    )
    assert value(s, "wxsurvey_webhook_deliveries_total", kind="scan") == 5
    assert value(s, "wxsurvey_webhook_deliveries_total", kind="refused") == 1
    assert value(s, "wxsurvey_webhook_seconds_count") == 5
    assert 0 < value(s, "wxsurvey_webhook_seconds_sum") < 5
    assert value(s, "wxsurvey_drained_total", result="inserted") == 3
    assert value(s, "wxsurvey_drain_batch_size_sum") == 3 and value(s, "wxsurvey_drain_batch_size_count") >= 1
    assert value(s, "wxsurvey_drain_lag_seconds_count") == value(s, "wxsurvey_drain_batch_size_count")
    assert value(s, "wxsurvey_intake_backlog") == 0 and value(s, "wxsurvey_intake_pending") == 0
    assert value(s, "wxsurvey_intake_oldest_age_seconds") == 0
    assert value(s, "wxsurvey_responses_held", status="quarantined") == 0
    assert value(s, "wxsurvey_export_runs_total", result="written") == 1
    assert value(s, "wxsurvey_wechat_api_calls_total", endpoint="/sns/oauth2/access_token", result="ok") == 3
    assert value(s, "wxsurvey_wechat_api_calls_total", endpoint="/cgi-bin/stable_token", result="ok") == 1
    assert value(s, "wxsurvey_wechat_token_refreshes_total", trigger="scheduled") == 1
    assert value(s, "wxsurvey_wechat_token_ttl_seconds") > 6000
    assert value(s, "wxsurvey_redis_up") == 1 and value(s, "wxsurvey_database_up") == 1
    assert value(s, "wxsurvey_queue_jobs_waiting", queue="intake") == 0

    stack.stop()
    routes, lines = set(), 0
    secrets_seen.discard(None)
    secrets_seen.discard("")
    for log in stack.logs:
        for line in log.read_text().splitlines():
            if not line.strip():
                continue
            lines += 1
            record = json.loads(line)  # every line of every process is one JSON object
            assert {"time", "level", "logger", "message"} <= record.keys(), line
            if record["logger"] == "wxsurvey.request":
                assert {"request_id", "route", "status", "duration_ms", "method"} <= record.keys()
                routes.add((record["method"], record["route"], record["status"]))
            leaked = [s for s in secrets_seen if s in line]
            assert not leaked, f"{log.name} logs a secret: {line}"
    assert lines > 20
    page = "/q/<survey_slug>/<department_code>"
    assert {
        ("POST", "/wechat", 200),
        ("POST", page, 200),
        ("GET", page, 302),  # a new citizen's way to WeChat's OAuth
        ("GET", "/oauth/callback", 200),  # back with the questionnaire itself
        ("GET", "/metrics", 200),
    } <= routes


def test_nginx_site_in_front_of_the_stack(stack, tmp_path):
    """deploy/nginx-wxsurvey.conf as installed by deploy/install.sh, on free ports: TLS, the redirect,
    static files from nginx with a month's caching, /wechat proxied, body limits, /metrics fenced."""
    from tests.ops.test_deploy import into_root, need, self_signed

    nginx = need("nginx")
    root = tmp_path / "root"
    scratch = {"DESTDIR": str(root), "WXSURVEY_VENV": str(ROOT / ".venv")}
    installed = subprocess.run(["sh", str(ROOT / "deploy/install.sh")], capture_output=True, text=True,
                               env={**os.environ, **scratch})  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    self_signed(root / "etc/ssl/wxsurvey")
    (root / "var/log/nginx").mkdir(parents=True)
    http_port, https_port = free_port(), free_port()
    site = into_root((root / "etc/nginx/sites-available/wxsurvey.conf").read_text(), root)
    for old, new in [("listen 80;", f"listen 127.0.0.1:{http_port};"), ("listen [::]:80;", ""),
                     ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
                     ("listen [::]:443 ssl http2;", ""),
                     ("127.0.0.1:5000", f"127.0.0.1:{stack.port}")]:  # fmt: skip
        site = site.replace(old, new)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    (prefix / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""  # the scratch root is private to this user
    (prefix / "nginx.conf").write_text(
        f"{user}daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  client_body_temp_path {prefix}/body;\n"
        f"  proxy_temp_path {prefix}/proxy;\n  include {prefix}/site.conf;\n}}\n"
    )
    stack.start(
        "nginx", [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "e.log")]
    )
    https = f"https://127.0.0.1:{https_port}"

    def serving() -> bool:
        try:
            return requests.get(https + "/healthz", verify=False, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # our own self-signed cert
    stack.wait_until(serving, "nginx to proxy /healthz")

    plain = requests.get(f"http://127.0.0.1:{http_port}{URL}?a=1", allow_redirects=False, timeout=5)
    assert plain.status_code == 301 and plain.headers["Location"] == f"https://127.0.0.1{URL}?a=1"

    page = requests.get(https + URL, verify=False, timeout=10)
    assert page.status_code == 200 and "max-age=31536000" in page.headers["Strict-Transport-Security"]
    css_url = re.search(r'href="(/static/citizen\.css\?v=[0-9a-f]+)"', page.text).group(1)
    css = requests.get(https + css_url, verify=False, timeout=5)
    assert css.status_code == 200 and css.content == (ROOT / "app/static/citizen.css").read_bytes()
    assert "max-age=2592000" in css.headers["Cache-Control"] and "X-Request-Id" not in css.headers  # nginx's

    wechat = load_settings(Path(stack.env["WXSURVEY_CONFIG"]), environ=stack.env).wechat
    from app.dev.wechat_server import event_xml, seal

    sealed = seal(event_xml("gh_0123456789ab", "oNGINXscan0001", "SCAN", "d:D08"), wechat, "safe")
    delivered = requests.post(f"{https}/wechat?{urlencode(sealed.params)}", data=sealed.body, verify=False,
                              timeout=10)  # fmt: skip
    assert delivered.status_code == 200 and "<Encrypt>" in delivered.text
    huge = requests.post(f"{https}/wechat?{urlencode(sealed.params)}", data=b"x" * 100_000, verify=False,
                         timeout=10)  # fmt: skip
    assert huge.status_code == 413 and "nginx" in huge.text  # refused in front, never reaches gunicorn
    # /metrics through nginx: the monitoring network only, and the app asks for its token.
    assert requests.get(https + "/metrics", verify=False, timeout=5).status_code == 404
    scraped = requests.get(https + "/metrics", verify=False, timeout=5,
                           headers={"Authorization": f"Bearer {stack.metrics_token}"})  # fmt: skip
    assert scraped.status_code == 200 and "wxsurvey_webhook_deliveries_total" in scraped.text
