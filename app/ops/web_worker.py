# wxsurvey's gunicorn worker: gthread's request handling, served by the thread an event wakes.
"""The web server's worker class (deploy/gunicorn.conf.py, `wxsurvey serve`).

**Threads that take their own events.** gunicorn's gthread worker has a loop thread that waits on
the sockets and hands each readable connection to a thread pool (a future, a queue, a wake-up),
and the pool hands it back when the request is answered (a callback, a pipe, another wake-up of
the loop, the socket registered again). Three threads woken per request: at campaign peak, with
two processes of 32 threads on two cores, that loop and those hand-offs were ~24% of a worker's
CPU (BENCHMARKS.md). Here every thread waits on one shared epoll for one event at a time, each
socket armed for a single event (EPOLLONESHOT): the thread the kernel wakes serves that
connection itself with gthread's own request handling (parsing, the WSGI call, keep-alive), then
arms the socket again. A listening socket's event is taken by one thread, which accepts one
connection, arms the socket for the next and serves the new connection at once if its request is
already there. The main thread only keeps time: gunicorn's heartbeat, kept-alive connections
that expire, the stop. A waiting connection belongs to nobody (`_idle`); a thread owns one from
taking it out of `_idle` until it puts it back or closes it, so no two threads serve one socket,
and an event that names a socket nobody waits on (closed and its number reused) is a spare one:
the thread looks (MSG_PEEK) before it reads, and a socket with nothing to read is armed again.

**Listening only while it can answer.** With `reuse_port` every gunicorn worker listens on a
socket of its own and the kernel hands each new connection to one of them by a hash of its
addresses. gunicorn opens that socket as it forks, before the app is loaded, and at a stop a
worker no longer takes connections but keeps the socket open until it exits. So when a worker is
replaced (`max_requests`, a crash, a reload), the connections the kernel hands to the new
worker's socket would wait there while it loads the app (about a second; more on a busy machine),
and those it hands to the stopping worker's socket would wait until that worker exits, and then
be reset. (Measured in the bench's open loop of 200 new citizens a second, one such replacement
took the journey's p99 from 0.6-0.9 s to 1.5-1.7 s and reset citizens' connections.) This worker:

- **starting**, takes what is queued on the socket made at the fork, closes it, and listens once
  the app is loaded (then answers what it took): meanwhile the kernel hands every connection to
  the workers that can answer;
- **stopping**, goes on taking connections (each answered, then closed) for `HANDOVER_SECONDS`,
  so that a replacement has time to load, or until none came for `IDLE_SECONDS`; then takes
  what the kernel has queued on its socket, closes it, and finishes what it holds within the
  graceful timeout, as gthread does.

What reaches a socket between its last accept and its close (microseconds), or is still in its
handshake then, the kernel resets, unless `net.ipv4.tcp_migrate_req = 1` (deploy/sysctl-wxsurvey.conf)
moves it to another worker's socket: a stress of 3,000 new connections a second over 30
replacements saw 10 resets without it and none with it. A worker whose sockets its master shares
(no `reuse_port`) stops listening at once when it stops.

Plain HTTP only (TLS ends at nginx, deploy/nginx-wxsurvey.conf): a TLS socket buffers what it
decrypted where epoll cannot see it.
"""

from __future__ import annotations

import errno
import select
import selectors
import socket
import threading
import time
from typing import Any

from gunicorn import sock as gunicorn_sock
from gunicorn import util
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import _DEFER, STOP_KEEPALIVE_LINGER, TConn
from gunicorn.workers.gthread import ThreadWorker as GThreadWorker

HANDOVER_SECONDS = 5.0  # at most; never more than half the graceful timeout, the rest is for requests
IDLE_SECONDS = 0.5  # a handover ends sooner when no connection came (nor was held) for this long
ARMED = select.EPOLLIN | select.EPOLLONESHOT  # one event, to one thread, until armed again
TICK_SECONDS = 0.5  # the main thread's heartbeat and expiry; 0.1 while it stops
WAIT_SECONDS = 1.0  # a serving thread's wait for an event before it looks whether to go on


class ThreadWorker(GThreadWorker):
    sockets: list[gunicorn_sock.BaseSocket]  # (gunicorn's Worker sets it, unannotated)
    _accepting: bool  # (gthread's: whether the listeners are armed)
    alive: bool  # (gunicorn's Worker: False once the worker stops)

    @classmethod
    def check_config(cls, cfg, log) -> None:
        if cfg.is_ssl:
            raise RuntimeError(
                "app.ops.web_worker serves plain HTTP: TLS ends at nginx (certfile/keyfile unset)"
            )
        super().check_config(cfg, log)

    def _own_sockets(self) -> bool:
        return bool(self.cfg.reuse_port and hasattr(socket, "SO_REUSEPORT"))

    def get_thread_pool(self):
        return None  # (gthread's pool: the serving threads take their own events)

    def init_process(self) -> None:
        self._epoll = select.epoll()
        self._lock = threading.Lock()  # _idle, _listeners, _held_back, nr_conns, arming
        self._idle: dict[int, TConn] = {}  # fd -> a connection armed and owned by no thread
        self.keepalived_conns = self._idle  # (gthread's handle_request counts them against the maximum)
        self._listeners: dict[int, Any] = {}  # fd -> a gunicorn BaseSocket
        self._held_back: set[int] = set()  # listeners not armed again: worker_connections reached
        self._serving = True
        self._last_accept = 0.0  # (monotonic) a handover lasts while connections keep coming
        if self._own_sockets():
            for listener in self.sockets:  # made by the master's fork, before the app is loaded
                for queued in _queued(listener):  # (answered once the app is loaded)
                    self._adopt(*queued)
                listener.close()
            self.sockets = []
        super().init_process()  # loads the app (load_wsgi), then run()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        if self._own_sockets() and not self.sockets:
            self.sockets = gunicorn_sock.create_sockets(self.cfg, self.log)
            for listener in self.sockets:
                util.close_on_exec(listener)

    def handle_quit(self, sig, frame) -> None:
        Worker.handle_quit(self, sig, frame)  # (gthread's would shut its pool down: there is none)

    # --- the main thread: time, and the stop ------------------------------------------------------

    def run(self) -> None:
        self.poller.register(
            self.method_queue.fileno(), selectors.EVENT_READ, self.method_queue.run_callbacks
        )
        self.set_accept_enabled(True)
        for number in range(self.cfg.threads):
            threading.Thread(target=self._take_events, name=f"web-{number}", daemon=True).start()
        while self.alive:
            self._tick(TICK_SECONDS)
            if not self.is_parent_alive():
                break
        self.alive = False  # (requests answered from now on close their connection)
        graceful = time.monotonic() + self.cfg.graceful_timeout  # (the handover within it)
        self._cap_keepalive(time.monotonic() + STOP_KEEPALIVE_LINGER)
        if self._own_sockets() and self._accepting:
            self._hand_over()
        self.set_accept_enabled(False)
        # A connection counts until it is closed: none left, no thread holds a request.
        while self.nr_conns > 0 and time.monotonic() < graceful:
            self._tick(0.1)
        self._serving = False
        for listener in self.sockets:
            listener.close()

    def _tick(self, timeout: float) -> None:
        try:
            for key, _ in self.poller.select(timeout):  # gthread's wake-up pipe (a signal's handler)
                key.data(key.fileobj)
        except InterruptedError:
            pass
        self.notify()
        now = time.monotonic()
        with self._lock:
            expired = [conn for conn in self._idle.values() if conn.timeout <= now]
            for conn in expired:
                del self._idle[conn.sock.fileno()]
        for conn in expired:
            self._close(conn)
        with self._lock:
            self._release_held_back()  # (a listener held back when the process ran out of descriptors)

    def _cap_keepalive(self, deadline: float) -> None:
        with self._lock:
            for conn in self._idle.values():
                conn.timeout = min(conn.timeout, deadline)

    def _hand_over(self) -> None:
        """Answer what reaches the socket while a replacement loads; then take what the kernel
        queued on it, and close it."""
        until = time.monotonic() + min(HANDOVER_SECONDS, self.cfg.graceful_timeout / 2)
        busy = time.monotonic()  # last seen holding a connection (a quick one may come and go between looks)
        while (now := time.monotonic()) < until:
            if self.nr_conns > 0:
                busy = now
            if now - max(busy, self._last_accept) >= IDLE_SECONDS:
                break
            self._tick(0.1)
        self.set_accept_enabled(False)
        for listener in self.sockets:
            for queued in _queued(listener):
                self._adopt(*queued)
            listener.close()
        self.sockets = []

    def set_accept_enabled(self, enabled: bool) -> None:
        with self._lock:
            if enabled == self._accepting:
                return
            self._accepting = enabled
            self._held_back.clear()
            for listener in self.sockets:
                fd = listener.fileno()
                if enabled:
                    listener.setblocking(False)
                    self._listeners[fd] = listener
                    self._epoll.register(fd, ARMED)
                else:
                    self._listeners.pop(fd, None)
                    self._forget_fd(fd)

    # --- the serving threads ------------------------------------------------------------------------

    def _take_events(self) -> None:
        while self._serving:
            for fd, _ in self._epoll.poll(WAIT_SECONDS, 1):
                try:
                    listener = self._listeners.get(fd)
                    if listener is not None:
                        self._accept(fd, listener)
                    else:
                        self._ready(fd)
                except Exception:  # (a serving thread must not end; gthread's handle logs requests' own)
                    self.log.exception("web worker: an event could not be served")
                except BaseException:  # the app's SystemExit: gthread's worker ended; this one stops
                    self.log.exception("web worker: stopping after a request ended the thread")
                    self.alive = False

    def _accept(self, fd: int, listener: Any) -> None:
        """One connection off the listener, which is armed again (or held back: worker_connections
        reached, or no descriptor left until a connection closes); then served."""
        with self._lock:
            taking = self._listeners.get(fd)
            if taking is None or taking is not listener:
                return  # (no longer listening: the stop closed it)
            client = None
            try:
                client, address = taking.accept()
                server = taking.getsockname()
                self.nr_conns += 1
                self._last_accept = time.monotonic()
            except OSError as exc:  # EAGAIN: taken by nobody (gone, or a spare event)
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log.warning("web worker: no connection taken (%s); again once one closes", exc)
                    self._held_back.add(fd)
                elif exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EINTR):
                    self.log.warning("web worker: a connection not taken: %s", exc)  # (accept(2): as EAGAIN)
            if fd not in self._held_back:
                if self.nr_conns < self.worker_connections:
                    self._epoll.modify(fd, ARMED)
                else:
                    self._held_back.add(fd)
        if client is not None:
            self._serve(self._connection(client, address, server))

    def _ready(self, fd: int) -> None:
        with self._lock:
            conn = self._idle.pop(fd, None)
        if conn is not None:  # (else a spare event: someone else's, or a socket closed since)
            self._serve(conn)

    def _serve(self, conn: TConn) -> None:
        """Answer the requests this connection has sent (it is this thread's), then park or close it."""
        try:
            sent = conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            self._park(conn)  # nothing yet: a new connection's request on its way, or a spare event
            return
        except OSError:
            sent = b""
        if not sent:
            self._close(conn)  # the client closed it
            return
        conn.data_ready = True
        try:
            keep = self.handle(conn)  # gthread's: parse, the WSGI call, keep-alive or not
            # (A body drained may have read ahead into the next request: no event will say it is there.)
            while keep and keep is not _DEFER and conn.parser.unreader.buf.getvalue():
                keep = self.handle(conn)
        except BaseException:
            self._close(conn)
            raise
        if not keep:
            self._close(conn, graceful=True)
            return
        conn.sock.setblocking(False)
        conn.set_timeout()
        self._park(conn)

    # --- connections ----------------------------------------------------------------------------------

    def _adopt(self, client: socket.socket, address, server) -> None:
        """A connection taken from a socket being closed: armed, for the serving threads."""
        conn = self._connection(client, address, server)
        with self._lock:
            self.nr_conns += 1
        self._park(conn)

    def _connection(self, client: socket.socket, address, server) -> TConn:
        """gthread's connection, given its first keep-alive to send a request in, not yet in epoll."""
        conn = TConn(self.cfg, client, address, server)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        conn.registered = False
        return conn

    def _park(self, conn: TConn) -> None:
        """Owned by nobody, armed for its next event (a stopping worker's for a short while)."""
        fd = conn.sock.fileno()
        with self._lock:
            if not self.alive:  # (read under the lock: the stop sets it before it caps those parked)
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self._idle[fd] = conn
            if conn.registered:
                self._epoll.modify(fd, ARMED)
            else:
                self._epoll.register(fd, ARMED)
                conn.registered = True

    def _close(self, conn: TConn, graceful: bool = False) -> None:
        """Closed, then no longer counted (the stop waits for the count, so a close is not cut short)."""
        with self._lock:
            self._forget(conn)
        if conn.sock.fileno() != -1:  # (gthread's handle_request closes it after a failed response)
            conn.close(graceful)
        with self._lock:
            self.nr_conns -= 1
            self._release_held_back()

    def _release_held_back(self) -> None:
        """Listeners held back armed again once under worker_connections. Under the lock."""
        if self._held_back and self.nr_conns < self.worker_connections:
            for fd in self._held_back:
                self._epoll.modify(fd, ARMED)
            self._held_back.clear()

    def _forget(self, conn: TConn) -> None:
        if conn.registered:
            self._forget_fd(conn.sock.fileno())
            conn.registered = False

    def _forget_fd(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # (never registered, or closed)


def _queued(listener) -> list[tuple[socket.socket, object, object]]:
    """The connections the kernel has queued on a listening socket, taken without waiting."""
    taken: list[tuple[socket.socket, object, object]] = []
    listener.setblocking(False)
    while True:
        try:
            client, address = listener.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue  # (one that went away while queued; the next)
        except BlockingIOError:
            return taken
        taken.append((client, address, listener.getsockname()))
