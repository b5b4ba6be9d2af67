"""The web server's worker class (app/ops/web_worker.py) in a real gunicorn with --reuse-port, as
`wxsurvey serve` and deploy/gunicorn.conf.py run it, on a test app whose loading and answers the
test holds (tests/ops/slow_wsgi.py). Which sockets listen is read from /proc, as the kernel sees
them: a worker still loading the app has none, a stopping one answers what reaches it and then
closes its own while its last request is still running, and a reload refuses or resets nothing.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.cli.supervisor import WORKER_CLASS, reuse_port
from chaos.stack import listening_sockets
from tests.conftest import ROOT
from tests.ops.test_deploy import free_port
from tests.redis_servers import wait_for

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, tmp: Path, workers: int = 2) -> None:
        self.port, self.dir = free_port(), tmp
        self.loaded, self.holding, self.release = tmp / "loaded", tmp / "holding", tmp / "release"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "WEB_WORKER_TEST_DIR": str(tmp)}
        self.log = open(tmp / "gunicorn.log", "wb")
        self.master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "tests.ops.slow_wsgi:app", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--threads", "16", "--worker-class", WORKER_CLASS,
             "--no-control-socket", "--graceful-timeout", "10", "--keep-alive", "5",
             *(["--reuse-port"] if reuse_port(workers) else [])],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def workers(self) -> set[int]:
        try:
            children = Path(f"/proc/{self.master.pid}/task/{self.master.pid}/children").read_text()
        except FileNotFoundError:
            return set()
        return {int(pid) for pid in children.split()}

    def loading(self, pid: int) -> bool:
        """Whether this worker is importing the app (past gunicorn's fork and the worker's setup)."""
        return (self.dir / f"loading-{pid}").exists()

    def holders(self) -> list[int]:
        return [int(pid) for pid in self.holding.read_text().split()] if self.holding.exists() else []

    def listening(self, pid: int) -> int:
        """How many sockets of this process listen on the server's port."""
        return listening_sockets(pid, self.port)

    def get(self, path: str = "/pid", timeout: float = 10) -> tuple[int, int]:
        """A request on a new connection, as a new citizen's phone makes it: (status, the worker's pid)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, int(response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        self.release.touch()
        self.loaded.touch()
        self.master.send_signal(signal.SIGINT)
        try:
            self.master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.master.kill()
            self.master.wait()
        self.log.close()


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path)
    yield server
    server.stop()


def test_a_worker_listens_only_once_it_has_loaded_the_app(server):
    wait_for(lambda: len(server.workers()) == 2 and all(map(server.loading, server.workers())), "two loading")
    first = server.workers()
    assert [server.listening(pid) for pid in first] == [0, 0]  # both loading: nobody to hand them to
    with pytest.raises(ConnectionRefusedError):
        server.get()
    server.loaded.touch()
    wait_for(lambda: all(server.listening(pid) == 1 for pid in first), "both workers listening")
    assert server.get()[0] == 200

    server.loaded.unlink()  # the next worker takes as long as the test wants to load
    old, kept = sorted(first)
    os.kill(old, signal.SIGTERM)  # replaced, as at max_requests
    wait_for(lambda: len(server.workers() - first) == 1, "a new worker forked")
    (new,) = server.workers() - first
    wait_for(lambda: server.loading(new), "the new worker loading the app")
    wait_for(lambda: server.listening(old) == 0, "the old worker's handover over (idle)")
    # While it loads, every new connection goes to the worker that can answer it, at once.
    answers = [server.get() for _ in range(40)]
    assert server.listening(new) == 0
    assert answers == [(200, kept)] * 40
    server.loaded.touch()
    wait_for(lambda: server.listening(new) == 1, "the new worker listening once loaded")
    wait_for(lambda: {pid for _, pid in (server.get() for _ in range(40))} == {kept, new}, "both answering")


def test_a_stopping_worker_answers_what_reaches_it_then_stops_listening_before_it_ends(server):
    server.loaded.touch()
    wait_for(lambda: len(server.workers()) == 2 and all(server.listening(p) for p in server.workers()), "up")
    held: list[tuple[int, int]] = []
    hold = threading.Thread(target=lambda: held.append(server.get("/hold", timeout=60)))
    hold.start()
    wait_for(server.holders, "a request in flight")
    (stopping,) = server.holders()
    (other,) = server.workers() - {stopping}
    os.kill(stopping, signal.SIGTERM)

    # Handing over: the stopping worker still answers what the kernel gives it (gthread alone left
    # those connections waiting, and reset them when it ended).
    answers = [server.get() for _ in range(40)]
    assert {status for status, _ in answers} == {200}
    # Then it closes its socket while its last request is still running: only the other listens.
    wait_for(lambda: server.listening(stopping) == 0, "the stopping worker's socket closed", timeout=30)
    assert stopping in server.workers() and hold.is_alive()
    assert [server.get() for _ in range(40)] == [(200, other)] * 40

    server.release.touch()
    hold.join(timeout=30)
    assert held == [(200, stopping)]  # the request in flight finished
    wait_for(lambda: stopping not in server.workers(), "the stopping worker ended")


def test_a_reload_answers_every_connection_while_the_new_workers_load(server):
    server.loaded.touch()
    wait_for(lambda: len(server.workers()) == 2 and all(server.listening(p) for p in server.workers()), "up")
    old = server.workers()
    # A request in flight on each old worker: they stay busy (a campaign's load) while they stop.
    holds = []
    while set(server.holders()) != old and len(holds) < 24:
        holds.append(threading.Thread(target=server.get, args=("/hold", 60)))
        holds[-1].start()
        count = len(holds)
        wait_for(lambda: len(server.holders()) == count, "the hold in flight")  # noqa: B023 (awaited here)
    assert set(server.holders()) == old

    server.loaded.unlink()  # the new workers load for as long as the test wants
    os.kill(server.master.pid, signal.SIGHUP)  # `systemctl reload wxsurvey-web`
    wait_for(lambda: len(server.workers() - old) == 2, "two new workers forked")
    new = server.workers() - old
    wait_for(lambda: all(map(server.loading, new)), "the new workers loading the app")
    # gthread alone: the old workers took nothing more and the new ones' sockets held every
    # connection until they had loaded. Here the old ones answer while the new ones load.
    assert [server.listening(pid) for pid in new] == [0, 0]
    assert {pid for _, pid in (server.get(timeout=5) for _ in range(20))} <= old

    server.loaded.touch()
    wait_for(lambda: all(server.listening(pid) for pid in new), "the new workers listening")
    server.release.touch()
    for hold in holds:
        hold.join(timeout=30)
    wait_for(lambda: server.workers() == new, "the old workers ended", timeout=60)
    assert {pid for _, pid in (server.get() for _ in range(20))} <= new


def test_a_single_worker_replaced_keeps_every_connection_waiting_for_its_successor(tmp_path):
    server = Server(tmp_path, workers=1)  # (`wxsurvey run` on one worker: no reuse_port, as web_argv says)
    try:
        server.loaded.touch()
        wait_for(lambda: len(server.workers()) == 1, "one worker")
        (old,) = server.workers()
        wait_for(lambda: server.get(timeout=5)[0] == 200, "the worker answering", timeout=60)
        server.loaded.unlink()
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: server.workers() and old not in server.workers(), "its successor forked", timeout=30)
        # Nothing can answer while the successor loads: a citizen's connection waits, it is not refused.
        waiting: list[tuple[int, int]] = []
        citizen = threading.Thread(target=lambda: waiting.append(server.get(timeout=60)))
        citizen.start()
        (new,) = server.workers()
        server.loaded.touch()
        citizen.join(timeout=90)
        assert waiting == [(200, new)]
    finally:
        server.stop()
