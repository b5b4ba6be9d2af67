"""The simulator's fake WeChat as a server process of its own, for the tests of this folder."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from app.dev.simulator import simulator_argv, simulator_url
from tests.conftest import ROOT
from tests.public.test_oauth import add_whoami


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sim(app, live_server, redis_url, tmp_path):
    """The fake WeChat in a gunicorn process of its own; the app (on live_server) talks to it."""
    add_whoami(app)
    settings = app.config["SETTINGS"]
    settings.app.base_url = live_server.url
    port = free_port()
    (tmp_path / "sim.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXSURVEY_")}
    env.update({
        "WXSURVEY_CONFIG": str(tmp_path / "sim.toml"),
        "WXSURVEY_APP_VAR_DIR": str(tmp_path / "var"),
        "WXSURVEY_APP_BASE_URL": live_server.url,
        "WXSURVEY_REDIS_URL": redis_url,
        "WXSURVEY_WECHAT_SIMULATOR_ERROR_RATE": "",
    })  # fmt: skip
    process = subprocess.Popen(simulator_argv("127.0.0.1", port), cwd=ROOT, env=env)
    url = simulator_url("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/cgi-bin/token", timeout=5)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline and process.poll() is None, "simulator did not start"
                time.sleep(0.05)
        settings.wechat.simulator_url = url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
