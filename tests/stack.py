"""A real `wxsurvey run` stack for end-to-end tests: started in a session of its own on a free
port, driven over HTTP as citizens would (signed session, form token), checked in SQL."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from hashlib import sha1
from pathlib import Path
from urllib.parse import urlencode

from tests.conftest import ROOT, run_cli, wait_for_no_processes_with_env

SECRET_KEY = "stack-test-secret-key-0123456789"
RESPONDENT_SECRET = "stack-test-respondent-secret-0123"
SURVEY, DEPT = "demo-departments", "D08"
ANSWERS = {
    "q_overall": "satisfied",
    "q_service_attitude": "basic",
    "q_efficiency": "satisfied",
    "q_openness": "very_satisfied",
    "q_integrity": "satisfied",
    "q_respondent_type": "citizen",
    "q_suggestion": "服务很好",
}
THANKS = "感谢您的评价"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Stack:
    """`wxsurvey run` on the embedded defaults under tmp_path/var (or the given env)."""

    def __init__(self, tmp_path: Path, base_url: bool = True, **env: str) -> None:
        self.port = free_port()
        self.var = tmp_path / "var"
        (tmp_path / "none.toml").write_text("")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")}
        self.env.update({
            "PYTHONPATH": str(ROOT),
            "WXSURVEY_CONFIG": str(tmp_path / "none.toml"),
            "WXSURVEY_APP_VAR_DIR": str(self.var),
            "WXSURVEY_APP_PORT": str(self.port),
            "WXSURVEY_APP_BASE_URL": f"http://127.0.0.1:{self.port}",
            "WXSURVEY_APP_WEB_WORKERS": "1",
            "WXSURVEY_APP_SECRET_KEY": SECRET_KEY,
            "WXSURVEY_SURVEY_RESPONDENT_SECRET": RESPONDENT_SECRET,
            **env,
        })  # fmt: skip
        if not base_url:  # dev mode's default: follows host and port
            del self.env["WXSURVEY_APP_BASE_URL"]
        self.process: subprocess.Popen | None = None
        self.log = tmp_path / "stack.log"
        self.acknowledged: list[str] = []  # openids that got a thank-you page
        self.refused: list[str] = []  # openids that got anything else
        self._serial = 0

    def cli(self, *args: str):
        return run_cli(*args, env=self.env)

    def start(self) -> Stack:
        for command in (["init"], ["demo"]):
            done = self.cli(*command)
            assert done.returncode == 0, done.stderr
        exe = ROOT / ".venv" / "bin" / "wxsurvey"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(exe), "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(lambda: "Press Ctrl-C to stop." in self.log.read_text(), 120, "the stack's links")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        left = wait_for_no_processes_with_env(f"WXSURVEY_APP_VAR_DIR={self.var}", 30)
        assert left == [], f"processes left behind: {left}"

    # --- traffic -----------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def submit(self, prefix: str = "c") -> bool:
        """One citizen's answers to D08; True if the thank-you page came back."""
        from flask.sessions import session_json_serializer
        from itsdangerous import URLSafeTimedSerializer

        from app.intake import issue_form_token

        self._serial += 1
        openid = f"{prefix}-{os.getpid()}-{self._serial}"
        cookies = URLSafeTimedSerializer(
            SECRET_KEY,
            salt="cookie-session",
            serializer=session_json_serializer,
            signer_kwargs={"key_derivation": "hmac", "digest_method": sha1},
        )
        cookie = cookies.dumps({"wx_openid": openid, "wx_channel": "wechat"})
        body = urlencode({**ANSWERS, "form_token": issue_form_token(SECRET_KEY, time.time() - 60)}).encode()
        request = urllib.request.Request(
            self.url(f"/q/{SURVEY}/{DEPT}"),
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"session={cookie}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                ok = response.status == 200 and THANKS in response.read().decode()
        except (urllib.error.URLError, OSError):
            ok = False
        (self.acknowledged if ok else self.refused).append(openid)
        return ok

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/healthz"), timeout=3) as response:
                return response.status == 200
        except OSError:
            return False

    # --- what SQL holds ------------------------------------------------------------------------------

    def stored_keys(self) -> list[str]:
        """The respondent keys of every response in SQL (the SQLite file of var/), repeats kept."""
        with sqlite3.connect(self.var / "wxsurvey.db", timeout=30) as db:
            return [row[0] for row in db.execute("SELECT respondent_key FROM responses")]

    def check_exactly_once(self, timeout: float = 120) -> None:
        """Every acknowledged answer reaches SQL exactly once; no refused one does."""
        from app.respondents import respondent_key

        wanted = {respondent_key(RESPONDENT_SECRET, openid) for openid in self.acknowledged}
        refused = {respondent_key(RESPONDENT_SECRET, openid) for openid in self.refused}
        wait_until(lambda: wanted <= set(self.stored_keys()), timeout, "every acknowledged answer in SQL")
        stored = self.stored_keys()
        assert len(stored) == len(set(stored)), "an answer counted twice"
        assert set(stored) & refused == set(), "a refused answer was stored"
        verify = self.cli("tallies", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
