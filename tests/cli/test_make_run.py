"""`make run` end to end: serves /healthz, prints the links, stops everything on Ctrl-C, and a
second run reuses the data without duplicating the demo."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.config import DEV_WECHAT
from tests.conftest import ROOT, run_cli, wait_for_no_processes_with_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_make_run(env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen(
        ["make", "-s", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "Press Ctrl-C to stop." in line:
            return process, lines
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail("make run did not print its links within 120 s:\n" + "\n".join(lines[-20:]))


def ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)  # what a terminal sends to the whole foreground group
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("make run did not stop within 60 s of Ctrl-C")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_env(tmp_path: Path, port: int, base_url: bool = True) -> dict[str, str]:
    sim_port = free_port()
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "WXSURVEY_CONFIG": str(tmp_path / "none.toml"),
        "WXSURVEY_APP_VAR_DIR": str(var),
        "WXSURVEY_APP_PORT": str(port),
        "WXSURVEY_APP_WEB_WORKERS": "1",
        "WXSURVEY_WECHAT_SIMULATOR_PORT": str(sim_port),
    })  # fmt: skip
    if base_url:
        env["WXSURVEY_APP_BASE_URL"] = f"http://127.0.0.1:{port}"
    (tmp_path / "none.toml").write_text("")
    return env


def nothing_left(env: dict[str, str], timeout: float = 30) -> list[tuple[int, str]]:
    """The processes still running that were started for this var/ directory (all inherit it)."""
    return wait_for_no_processes_with_env(f"WXSURVEY_APP_VAR_DIR={env['WXSURVEY_APP_VAR_DIR']}", timeout)


def readyz(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


@pytest.mark.slow
def test_make_run_twice(tmp_path):
    port = free_port()
    env = run_env(tmp_path, port)
    sim_port = int(env["WXSURVEY_WECHAT_SIMULATOR_PORT"])
    var = Path(env["WXSURVEY_APP_VAR_DIR"])
    for attempt in (1, 2):
        process, lines = start_make_run(env)
        try:
            output = "\n".join(lines)
            assert f"http://127.0.0.1:{port}/console/" in output
            assert f"http://127.0.0.1:{port}/q/demo-departments/D08" in output
            assert f"http://127.0.0.1:{port}/dev/phone" in output
            assert "password" in output
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                assert json.load(response) == {"status": "ok"}
            assert Path(var, "redis.sock").exists()
            # The fake WeChat API answers from a process of its own, on its own port.
            fake = f"http://127.0.0.1:{sim_port}/dev/wechat"
            assert f"fake WeChat:   {fake}" in output
            token = f"{fake}/cgi-bin/token?grant_type=client_credential&appid={DEV_WECHAT['appid']}"
            with urllib.request.urlopen(f"{token}&secret={DEV_WECHAT['secret']}", timeout=5) as response:
                assert json.load(response)["access_token"].startswith("SIM_")
        finally:
            ctrl_c(process)
        deadline = time.monotonic() + 30
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(process.pid), f"run {attempt}: processes left behind after Ctrl-C"
        for stopped in (f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{sim_port}/dev/wechat/"):
            with pytest.raises(OSError):
                urllib.request.urlopen(stopped, timeout=2)
        assert not Path(var, "redis.sock").exists(), "embedded redis still running"
        assert nothing_left(env) == [], f"run {attempt}"
    listed = run_cli("departments", "list", "--json", env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    departments = json.loads(listed.stdout)
    assert len(departments) == 25 + 6 + 18
    assert len({d["code"] for d in departments}) == len(departments)
    # A command that needed the embedded Redis started it for itself and stopped it when done.
    assert nothing_left(env) == []


@pytest.mark.slow
def test_make_run_killed_outright_leaves_nothing(tmp_path):
    """SIGKILL to every process of `make run` (a closed terminal, a killed test): the embedded
    redis-server, in a session of its own, goes with its owner all the same."""
    env = run_env(tmp_path, free_port())
    process, _ = start_make_run(env)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert nothing_left(env) == []


@pytest.mark.slow
def test_new_stack_waits_for_the_one_still_stopping_and_a_third_is_refused(tmp_path):
    """`make run` again while the previous stack is stopping: the new one must not join the old
    Redis that is about to go; it waits, then owns a Redis of its own and stays up."""
    port = free_port()
    env = run_env(tmp_path, port)
    old, _ = start_make_run(env)
    os.killpg(old.pid, signal.SIGINT)  # Ctrl-C, and at once again:
    new, _ = start_make_run(env)
    try:
        old.wait(timeout=60)
        deadline = time.monotonic() + 30
        while group_alive(old.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(old.pid)
        owner = json.loads(Path(env["WXSURVEY_APP_VAR_DIR"], "redis.owner").read_text())
        assert owner["role"] == "run" and owner["state"] == "running"
        assert os.getpgid(owner["pid"]) == new.pid  # the new stack's `wxsurvey run`
        checks = readyz(port)["checks"]
        assert checks["redis"]["ok"] is True, checks
        third = run_cli("run", env={k: v for k, v in env.items() if k != "PYTHONPATH"})
        assert third.returncode != 0
        assert third.stderr.strip().count("\n") == 0, third.stderr
        assert third.stderr.startswith("wxsurvey: error: another `wxsurvey run`")
        assert readyz(port)["checks"]["redis"]["ok"] is True  # the refused one stopped nothing
    finally:
        ctrl_c(new)
    assert nothing_left(env) == []
