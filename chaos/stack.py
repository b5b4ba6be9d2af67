# A real `wxsurvey run` stack for the fault-injection suite and the end-to-end tests: started in
# a session of its own on a free port, driven over HTTP as citizens and WeChat would, checked in SQL.
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from hashlib import sha1
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
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
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
WECHAT_UA = "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Mobile Safari/537.36 MicroMessenger/8.0.47"
ACCOUNT = "gh_chaos000000"


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


def processes_with_env(entry: str) -> list[tuple[int, str]]:
    """(pid, command line) of the running processes (zombies aside) whose environment holds
    `entry` ("NAME=value"), this one excepted."""
    found, needle = [], entry.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(proc.name), command.strip()))
    return found


def listening_sockets(pid: int, port: int) -> int:
    """How many sockets of this process listen on the TCP port (IPv4), as the kernel sees them."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:  # (the process is gone)
        return 0
    inodes = {link[8:-1] for link in links if link.startswith("socket:[")}
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        count += fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port and fields[9] in inodes
    return count


def wait_for_no_processes_with_env(entry: str, timeout: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while (left := processes_with_env(entry)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


class Stack:
    """`wxsurvey run` on the embedded defaults under workdir/var, or on the servers `env` names."""

    def __init__(
        self, workdir: Path, base_url: bool = True, run_args: tuple[str, ...] = (), **env: str
    ) -> None:
        self.port = free_port()
        self.run_args = run_args  # more arguments of `wxsurvey run`
        self.var = workdir / "var"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "none.toml").write_text("")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")}
        self.env.update({
            "PYTHONPATH": str(ROOT),
            "WXSURVEY_CONFIG": str(workdir / "none.toml"),
            "WXSURVEY_APP_VAR_DIR": str(self.var),
            "WXSURVEY_APP_PORT": str(self.port),
            "WXSURVEY_APP_BASE_URL": f"http://127.0.0.1:{self.port}",
            "WXSURVEY_APP_WEB_WORKERS": "1",
            "WXSURVEY_WECHAT_SIMULATOR_PORT": str(free_port()),  # stacks side by side: one simulator each
            "WXSURVEY_APP_SECRET_KEY": SECRET_KEY,
            "WXSURVEY_SURVEY_RESPONDENT_SECRET": RESPONDENT_SECRET,
            **env,
        })  # fmt: skip
        if not base_url:  # dev mode's default: follows host and port
            del self.env["WXSURVEY_APP_BASE_URL"]
        self.process: subprocess.Popen | None = None
        self.log = workdir / "stack.log"
        self.acknowledged: list[str] = []  # openids that got a thank-you page
        self.refused: list[str] = []  # openids that got anything else
        self._serial = 0
        self._lock = threading.Lock()
        self._engine = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        exe = ROOT / ".venv" / "bin" / "wxsurvey"
        command = [str(exe)] if exe.exists() else [sys.executable, "-c", "from app.cli import main; main()"]
        return subprocess.run(command + list(args), env=self.env, capture_output=True, text=True, timeout=120)

    def start(self) -> Stack:
        for command in (["init"], ["demo"]):
            done = self.cli(*command)
            if done.returncode != 0:
                raise RuntimeError(f"wxsurvey {command[0]} failed: {done.stderr.strip()[-500:]}")
        exe = ROOT / ".venv" / "bin" / "wxsurvey"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(exe), "run", *self.run_args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: "Press Ctrl-C to stop." in self.log.read_text(), 120, "the stack's links")
        return self

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        left = wait_for_no_processes_with_env(f"WXSURVEY_APP_VAR_DIR={self.var}", 30)
        assert left == [], f"processes left behind: {left}"

    def children(self, needle: str) -> list[int]:
        """The pids of the supervisor's children whose command line ends with `needle`."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid), "-f", needle], capture_output=True)
        return [int(pid) for pid in out.stdout.split()]

    # --- traffic -----------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _citizen(self, prefix: str) -> tuple[str, str]:
        """A new citizen: an openid of its own and the session cookie OAuth would have left."""
        from flask.sessions import session_json_serializer
        from itsdangerous import URLSafeTimedSerializer

        with self._lock:
            self._serial += 1
            openid = f"{prefix}-{os.getpid()}-{self._serial}"
        cookies = URLSafeTimedSerializer(
            SECRET_KEY,
            salt="cookie-session",
            serializer=session_json_serializer,
            signer_kwargs={"key_derivation": "hmac", "digest_method": sha1},
        )
        return openid, cookies.dumps({"wx_openid": openid, "wx_channel": "wechat"})

    def _answer(self, openid: str, cookie: str, token: str) -> bool:
        """POST the answers; True (and counted as acknowledged) if the thank-you page came back."""
        request = urllib.request.Request(
            self.url(f"/q/{SURVEY}/{DEPT}"),
            data=urlencode({**ANSWERS, "form_token": token}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"session={cookie}",
                     "User-Agent": WECHAT_UA},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                ok = response.status == 200 and THANKS in response.read().decode()
        except (urllib.error.URLError, OSError):
            ok = False
        with self._lock:
            (self.acknowledged if ok else self.refused).append(openid)
        return ok

    def submit(self, prefix: str = "c") -> bool:
        """One citizen's answers to D08 (with a form token as the page gives); True if thanked."""
        from app.intake import issue_form_token

        openid, cookie = self._citizen(prefix)
        return self._answer(openid, cookie, issue_form_token(SECRET_KEY, time.time() - 60))

    def open_and_answer(self, prefix: str = "f") -> tuple[bool, float]:
        """A new citizen opens D08's questionnaire, then answers with its token: (thanked, seconds
        the form took; 10 when it did not come)."""
        openid, cookie = self._citizen(prefix)
        request = urllib.request.Request(
            self.url(f"/q/{SURVEY}/{DEPT}"), headers={"Cookie": f"session={cookie}", "User-Agent": WECHAT_UA}
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                token = FORM_TOKEN.search(response.read().decode()) if response.status == 200 else None
        except (urllib.error.URLError, OSError):
            token = None
        seconds = time.monotonic() - started
        if token is None:
            with self._lock:
                self.refused.append(openid)
            return False, 10.0
        return self._answer(openid, cookie, token.group(1)), seconds

    def scan(self, openid: str, create_time: int, nonce: str) -> tuple[int, dict[str, str], float]:
        """A signed, encrypted SCAN event of D08's code: (HTTP status, the reply's fields, seconds)."""
        from app.config import DEV_WECHAT
        from app.dev.wechat_server import event_xml, open_reply, seal

        wechat = SimpleNamespace(**DEV_WECHAT)
        xml = event_xml(ACCOUNT, openid, "SCAN", f"s:{SURVEY}:{DEPT}", create_time=create_time)
        sealed = seal(xml, wechat, "safe", timestamp=create_time, nonce=nonce)
        request = urllib.request.Request(
            self.url("/wechat?" + urlencode(sealed.params)),
            data=sealed.body,
            headers={"Content-Type": "text/xml"},
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, ""
        except OSError:
            status, body = 0, ""
        reply = open_reply(body, wechat) if status == 200 else {}
        return status, reply, time.monotonic() - started

    def readyz(self) -> dict:
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            return json.load(exc)
        except (OSError, ValueError):
            return {"status": "unreachable", "checks": {}}

    def keep_evidence(self, what: str, logs: tuple[Path, ...] = ()) -> None:
        """What a stack that did not recover said (its /readyz, the answers' counts, the end of its
        log), printed; its log and `logs` kept in chaos-results/ before the temporary directory goes."""
        results = ROOT / "chaos-results"
        results.mkdir(exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
        for log in (self.log, *logs):
            if log.exists():
                (results / f"{slug}-{log.parent.name}-{log.name}").write_bytes(log.read_bytes())
        print(f"chaos: no recovery from {what}; /readyz: {json.dumps(self.readyz(), ensure_ascii=False)}")
        print(f"chaos: answers: {self.exactly_once(timeout=0)}")
        tail = self.log.read_text(errors="replace").splitlines()[-60:]
        print(f"chaos: the stack log's last {len(tail)} lines (kept whole in {results}):")
        print("\n".join("  | " + line for line in tail), flush=True)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/healthz"), timeout=3) as response:
                return response.status == 200
        except OSError:
            return False

    # --- what SQL holds ------------------------------------------------------------------------------

    def database_url(self) -> str:
        return self.env.get("WXSURVEY_DATABASE_URL") or f"sqlite:///{self.var / 'wxsurvey.db'}"

    def stored_keys(self) -> list[str] | None:
        """The respondent keys of every response in SQL, repeats kept; None while SQL is down."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        if self._engine is None:
            self._engine = create_engine(self.database_url(), pool_pre_ping=True)
        try:
            with self._engine.connect() as conn:
                return [row[0] for row in conn.execute(text("SELECT respondent_key FROM responses"))]
        except SQLAlchemyError:
            return None

    def exactly_once(self, timeout: float = 120) -> dict[str, int]:
        """Wait for every acknowledged answer to reach SQL; count the lost, doubled and stray ones."""
        from app.intake.respondents import respondent_key

        with self._lock:
            wanted = {respondent_key(RESPONDENT_SECRET, o) for o in self.acknowledged}
            refused = {respondent_key(RESPONDENT_SECRET, o) for o in self.refused}
        deadline = time.monotonic() + timeout
        stored = self.stored_keys()
        while time.monotonic() < deadline and (stored is None or not wanted <= set(stored)):
            time.sleep(0.2)
            stored = self.stored_keys()
        stored = stored or []
        return {
            "acknowledged": len(wanted),
            "refused": len(refused),
            "in_sql": len(wanted & set(stored)),
            "lost": len(wanted - set(stored)),
            "counted_twice": len(stored) - len(set(stored)),
            "refused_but_stored": len(refused & set(stored)),
        }

    def verify_tallies(self) -> bool:
        return self.cli("tallies", "verify").returncode == 0
