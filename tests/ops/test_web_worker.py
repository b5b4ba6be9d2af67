"""The web server's worker class (app/ops/web_worker.py) in a real gunicorn with --reuse-port, as
`wxsurvey serve` and deploy/gunicorn.conf.py run it, on a test app whose loading and answers the
test holds (tests/ops/slow_wsgi.py). Which sockets listen is read from /proc, as the kernel sees
them: a worker still loading the app has none, a stopping one answers what reaches it and then
closes its own while its last request is still running, and a reload refuses or resets nothing.
Its threads serve the connections their events name: as many requests in flight as threads,
kept-alive connections reused and expired, requests pipelined behind one another all answered,
and no more connections than worker_connections.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.cli.supervisor import WORKER_CLASS, reuse_port
from chaos.stack import listening_sockets
from tests.conftest import ROOT
from tests.ops.test_deploy import free_port
from tests.redis_servers import wait_for

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, tmp: Path, workers: int = 2, *options: str) -> None:
        self.port, self.dir = free_port(), tmp
        self.loaded, self.holding, self.release = tmp / "loaded", tmp / "holding", tmp / "release"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "WEB_WORKER_TEST_DIR": str(tmp)}
        self.log = open(tmp / "gunicorn.log", "wb")
        self.master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "tests.ops.slow_wsgi:app", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--threads", "16", "--worker-class", WORKER_CLASS,
             "--no-control-socket", "--graceful-timeout", "10", "--keep-alive", "5",
             *(["--reuse-port"] if reuse_port(workers) else []), *options],
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

    # Handing over: the stopping worker still answers what the kernel gives it (gunicorn alone left
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


def test_a_stopping_worker_hands_over_for_as_long_as_quick_connections_keep_coming(server):
    server.loaded.touch()
    wait_for(lambda: len(server.workers()) == 2 and all(server.listening(p) for p in server.workers()), "up")
    stopping, other = sorted(server.workers())
    server.loaded.unlink()  # its replacement loads for as long as the test wants
    os.kill(stopping, signal.SIGTERM)
    stopped_at, answers = time.monotonic(), []
    for _ in range(60):  # a citizen every 50 ms for 3 s, each on a new connection and answered at once
        status, pid = server.get(timeout=5)
        answers.append((time.monotonic() - stopped_at, status, pid))
        time.sleep(0.05)  # (the load's pace)
    # The kernel gave the stopping worker about half of them; between two it held none, and yet it
    # went on answering past IDLE_SECONDS (0.5 s): quick connections that keep coming count.
    assert {status for _, status, _ in answers} == {200}
    assert max(at for at, _, pid in answers if pid == stopping) > 2.0
    assert {pid for _, _, pid in answers} == {stopping, other}


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
    # gunicorn alone: the old workers took nothing more and the new ones' sockets held every
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


def _serving(server: Server) -> Server:
    server.loaded.touch()
    wait_for(lambda: server.workers() and all(server.listening(p) for p in server.workers()), "listening")
    return server


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _answers(sock: socket.socket, count: int) -> list[bytes]:
    """The bodies of `count` responses read off one connection (each a "200 OK" with its length)."""
    data, bodies = b"", []
    while len(bodies) < count:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            assert head.startswith(b"HTTP/1.1 200"), head
            fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
            length = int(fields[b"content-length"])
            if len(rest) >= length:
                bodies.append(rest[:length])
                data = rest[length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before answering"
        data += chunk
    return bodies


GET = b"GET /pid HTTP/1.1\r\nHost: test\r\n\r\n"


def test_as_many_requests_in_flight_as_threads_and_the_next_waits_for_one(tmp_path):
    server = _serving(Server(tmp_path, 1, "--threads", "3"))  # (the class's own --threads 16 is overridden)
    try:
        holds = [threading.Thread(target=server.get, args=("/hold", 60)) for _ in range(3)]
        for hold in holds:
            hold.start()
        wait_for(lambda: len(server.holders()) == 3, "three requests in flight at once")
        waiting = _connect(server)  # every thread is busy: accepted later, or answered later
        waiting.sendall(GET)
        waiting.settimeout(0.3)
        with pytest.raises(TimeoutError):
            waiting.recv(1)
        server.release.touch()
        waiting.settimeout(10)
        assert _answers(waiting, 1) == [str(*server.workers()).encode()]
        for hold in holds:
            hold.join(timeout=30)
        waiting.close()
    finally:
        server.stop()


def test_a_kept_alive_connection_serves_request_after_request_and_pipelined_ones_too(tmp_path):
    server = _serving(Server(tmp_path, 1))
    try:
        (pid,) = server.workers()
        with _connect(server) as sock:
            for _ in range(5):  # one at a time, each waited for (a browser)
                sock.sendall(GET)
                assert _answers(sock, 1) == [str(pid).encode()]
            sock.sendall(GET * 4)  # four in one write: the last three are read with the first
            assert _answers(sock, 4) == [str(pid).encode()] * 4
    finally:
        server.stop()


def test_an_idle_connection_is_closed_after_the_keep_alive_and_a_silent_one_too(tmp_path):
    server = _serving(Server(tmp_path, 1, "--keep-alive", "1"))
    try:
        used, silent = _connect(server), _connect(server)
        used.sendall(GET)
        _answers(used, 1)
        for sock in (used, silent):  # the server closes both (recv sees the end) within its keep-alive
            sock.settimeout(10)
            assert sock.recv(1) == b""
            sock.close()
        assert server.get()[0] == 200
    finally:
        server.stop()


def test_no_more_connections_than_worker_connections_until_one_closes(tmp_path):
    server = _serving(Server(tmp_path, 1, "--threads", "1", "--worker-connections", "2"))
    try:
        first, second = _connect(server), _connect(server)  # connected, nothing sent yet: both held
        third = _connect(server)  # (the kernel completes the handshake and queues it; the worker waits)
        third.sendall(GET)
        third.settimeout(0.3)
        with pytest.raises(TimeoutError):
            third.recv(1)
        first.close()  # a slot free: the worker accepts the third and answers it
        third.settimeout(10)
        assert _answers(third, 1) == [str(*server.workers()).encode()]
        for sock in (second, third):
            sock.close()
    finally:
        server.stop()
