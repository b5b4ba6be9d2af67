# wxsurvey's gunicorn worker: gthread's threads, listening only while it can answer.
"""The web server's worker class (deploy/gunicorn.conf.py, `wxsurvey serve`).

With `reuse_port` every gunicorn worker listens on a socket of its own and the kernel hands each
new connection to one of them by a hash of its addresses. gunicorn's gthread worker opens that
socket as it forks, before it loads the app, and at a stop it no longer takes connections but keeps
the socket open until it exits. So when a worker is replaced (`max_requests`, a crash, a reload):

- the connections the kernel hands to the new worker's socket wait there while it loads the app
  (about a second; more on a busy machine);
- those it hands to the stopping worker's socket wait until that worker exits, and are then reset.

A campaign morning recycles each worker every ten minutes or so. Measured in the bench's open loop
of 200 new citizens a second (BENCHMARKS.md), one such replacement took the journey's p99 from
0.6-0.9 s to 1.5-1.7 s and reset citizens' connections.

This worker differs in those two moments only:

- **starting**, it takes what is queued on the socket made at the fork, closes it, and listens
  once the app is loaded (then answers what it took): meanwhile the kernel hands every connection
  to the workers that can answer;
- **stopping**, it goes on taking connections (each answered, then closed) for `HANDOVER_SECONDS`,
  so that a replacement has time to load, or until none came for `IDLE_SECONDS`; then it takes
  what the kernel has queued on its socket, closes it, and finishes as gthread does.

What reaches a socket between its last accept and its close (microseconds), or is still in its
handshake then, the kernel resets, unless `net.ipv4.tcp_migrate_req = 1` (deploy/sysctl-wxsurvey.conf)
moves it to another worker's socket: a stress of 3,000 new connections a second over 30
replacements saw 10 resets without it and none with it.

A worker whose sockets its master shares (no `reuse_port`) is gthread's, unchanged.
"""

from __future__ import annotations

import socket
import time

from gunicorn import sock as gunicorn_sock
from gunicorn import util
from gunicorn.workers.gthread import TConn
from gunicorn.workers.gthread import ThreadWorker as GThreadWorker

HANDOVER_SECONDS = 5.0  # at most; never more than half the graceful timeout, the rest is for requests
IDLE_SECONDS = 0.5  # a handover ends sooner when nothing came for this long (a quiet stop)


class ThreadWorker(GThreadWorker):
    sockets: list[gunicorn_sock.BaseSocket]  # (gunicorn's Worker sets it, unannotated)
    _handover_until: float | None = None  # set while the stopping worker still listens
    _idle_since: float | None = None

    def _own_sockets(self) -> bool:
        return bool(self.cfg.reuse_port and hasattr(socket, "SO_REUSEPORT"))

    def init_process(self) -> None:
        self._early: list[tuple[socket.socket, object, object]] = []
        if self._own_sockets():
            for listener in self.sockets:  # made by the master's fork, before the app is loaded
                self._early += _queued(listener)  # (answered once the app is loaded)
                listener.close()
            self.sockets = []
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        if self._own_sockets() and not self.sockets:
            self.sockets = gunicorn_sock.create_sockets(self.cfg, self.log)
            for listener in self.sockets:
                util.close_on_exec(listener)
        for queued in self._early:
            self._answer(*queued)
        self._early = []

    def _answer(self, client: socket.socket, address, server) -> None:
        """A connection taken from a socket being closed: answered as gthread answers one it accepts."""
        client.setblocking(True)
        self.nr_conns += 1
        self.enqueue_req(TConn(self.cfg, client, address, server))

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled or self.alive or not self._own_sockets() or not self._accepting:
            super().set_accept_enabled(enabled)
            return
        if self._handover_until is None:  # the worker has begun to stop: hand over
            handover = min(HANDOVER_SECONDS, self.cfg.graceful_timeout / 2)
            self._handover_until = time.monotonic() + handover
            # gthread's graceful phase lasts while the worker has connections: the socket counts
            # as one until it is closed.
            self.nr_conns += 1

    def finish_request(self, conn, fs) -> None:
        super().finish_request(conn, fs)
        self._end_handover_if_due()

    def murder_pending(self) -> None:
        super().murder_pending()  # once per turn of gthread's loops, the graceful one included
        self._end_handover_if_due()

    def _end_handover_if_due(self) -> None:
        if self._handover_until is None or not self._accepting:
            return
        now = time.monotonic()
        if self.nr_conns > 1:  # (one is the socket)
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        if now < self._handover_until and (self._idle_since is None or now - self._idle_since < IDLE_SECONDS):
            return
        super().set_accept_enabled(False)
        for listener in self.sockets:
            for queued in _queued(listener):  # what the kernel has queued on it, answered with the rest
                self._answer(*queued)
            listener.close()
        self.nr_conns -= 1


def _queued(listener) -> list[tuple[socket.socket, object, object]]:
    """The connections the kernel has queued on a listening socket, taken without waiting."""
    taken: list[tuple[socket.socket, object, object]] = []
    while True:
        try:
            client, address = listener.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue  # (one that went away while queued; the next)
        except BlockingIOError:
            return taken
        taken.append((client, address, listener.getsockname()))
