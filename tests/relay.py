"""A TCP relay on loopback in front of a real server (WeChat's fake API, a Redis): what stands
between the app and its peer, and what the network can do to it. It counts the connections it
accepts, keeps what each connection's client sent, can drop every connection (a server ending idle
keep-alives), and can lose replies: after `lose(marker, times)` the next `times` requests holding
`marker` reach the server, which runs them, and their connection is cut before the reply comes
back (a network fault, a reply timeout). After `cut(marker, times)` the next `times` requests
holding `marker` never reach the server: their connection is cut as they arrive (a server ending a
kept-alive connection just as a request went out)."""

from __future__ import annotations

import contextlib
import socket
import threading

import redis


class Relay:
    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream  # (host, port), or a unix socket's path
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.sent: list[bytearray] = []  # what each connection's client sent
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self._marker, self._times, self._after, self.lost = b"", 0, 0, 0
        self._cut_marker, self._cut_times, self.cut_requests = b"", 0, 0
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def for_redis(cls, url: str) -> tuple[Relay, str]:
        """A relay in front of the Redis of `url`, and the redis:// URL that goes through it."""
        kwargs = redis.Redis.from_url(url).connection_pool.connection_kwargs
        relay = cls(kwargs.get("path") or (kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)))
        return relay, f"redis://127.0.0.1:{relay.port}/{kwargs.get('db', 0)}"

    def lose(self, marker: bytes, times: int, after: int = 0) -> None:
        """Lose the replies to the next `times` requests holding `marker`, the first `after` passed."""
        with self.lock:
            self._marker, self._times, self._after = marker, times, after

    def cut(self, marker: bytes, times: int) -> None:
        """Cut the connection of the next `times` requests holding `marker` before the server sees them."""
        with self.lock:
            self._cut_marker, self._cut_times = marker, times

    def drop_all(self) -> None:
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accepting thread (close alone does not)
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.drop_all()
        with self.lock:
            for sock in self.sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if isinstance(self.upstream, str):
                upstream = socket.socket(socket.AF_UNIX)
                upstream.connect(self.upstream)
            else:
                upstream = socket.create_connection(self.upstream)
            sent, doomed = bytearray(), threading.Event()
            with self.lock:
                self.accepted += 1
                self.sent.append(sent)
                self.sockets += [client, upstream]
            requests = threading.Thread(target=self._requests, args=(client, upstream, sent, doomed))
            replies = threading.Thread(target=self._replies, args=(upstream, client, doomed))
            for pump in (requests, replies):
                pump.daemon = True
                pump.start()

    def _requests(self, client: socket.socket, upstream: socket.socket, sent: bytearray, doomed) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                with self.lock:
                    sent += data
                    if self._cut_times and self._cut_marker in data:
                        self._cut_times -= 1
                        self.cut_requests += 1
                        break
                    if self._times and self._marker in data:
                        if self._after:
                            self._after -= 1
                        else:
                            self._times -= 1
                            self.lost += 1
                            doomed.set()
                upstream.sendall(data)
        _shut(client, upstream)

    @staticmethod
    def _replies(upstream: socket.socket, client: socket.socket, doomed) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if doomed.is_set():  # the server has answered: the client never hears it
                    break
                client.sendall(data)
        _shut(upstream, client)


def _shut(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
