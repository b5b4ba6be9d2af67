# The load generator, run as its own process (`python -m bench.loadgen` with a JSON spec on stdin):
# keep-alive HTTP/1.1 over asyncio streams, open loop at a constant rate or closed loop.
"""Open loop: request i is due at start + i/rate whatever happened before, and its latency is
measured from that due time, so a server stall is charged to every request it delayed (no
coordinated omission). Prints one JSON object (bench.harness.Load) on stdout."""

from __future__ import annotations

import asyncio
import importlib
import json
import resource
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit


def _factory(dotted: str):
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked responses are not supported by the load generator")
    if length:
        await reader.readexactly(length)
    return status


class Connections:
    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self.pool: asyncio.Queue = asyncio.Queue()
        for _ in range(size):
            self.pool.put_nowait(None)

    async def request(self, payload: bytes) -> int:
        conn = await self.pool.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = conn
            writer.write(payload)
            status = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if conn is not None:
                conn[1].close()
            conn = None
            raise
        finally:
            self.pool.put_nowait(conn)
        return status


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests: list[bytes] = _factory(spec["factory"])(spec.get("args") or {}, f"{host}:{port}")
    if not requests:
        raise ValueError("the request factory returned no requests")
    rate, duration, count = spec.get("rate"), float(spec.get("duration") or 5), spec.get("count")
    conns = Connections(host, port, int(spec.get("connections") or 32))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    last_done = 0.0

    async def one(payload: bytes, due: float) -> None:
        nonlocal errors, last_done
        try:
            status = await conns.request(payload)
            statuses[str(status)] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors += 1
            statuses[type(exc).__name__] += 1
        latencies.append(time.perf_counter() - due)
        last_done = time.time()

    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    sent = 0
    if rate:
        total = int(count or rate * duration)
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(requests[i % len(requests)], due)))
            sent += 1
        await asyncio.gather(*tasks)
    else:
        stop_at = start + duration
        limit = count or float("inf")

        async def loop() -> None:
            nonlocal sent
            while time.perf_counter() < stop_at and sent < limit:
                i = sent
                sent += 1
                await one(requests[i % len(requests)], time.perf_counter())

        await asyncio.gather(*(loop() for _ in range(int(spec.get("connections") or 32))))
    elapsed = time.perf_counter() - start
    cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    completed = len(latencies) - errors
    return {
        "sent": sent,
        "completed": completed,
        "errors": errors,
        "statuses": dict(statuses),
        "duration_s": round(elapsed, 3),
        "throughput": round(completed / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "rate": rate,
        "last_completed_at": last_done,
        "cpu_s": round(cpu, 2),  # the generator's own CPU during the run (it shares the machine)
    }


def http_request(method: str, host: str, path: str, headers: dict[str, str] | None = None,
                 body: bytes = b"") -> bytes:  # fmt: skip
    """A complete keep-alive HTTP/1.1 request, for request factories to build on."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def constant_get(args: dict[str, Any], host: str) -> list[bytes]:
    """A factory for the bare endpoint: GET or POST of `path` (args: path, method, body)."""
    body = str(args.get("body", "")).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    return [http_request(args.get("method", "GET"), host, args.get("path", "/"), headers, body)]


def main() -> int:
    spec = json.loads(sys.stdin.read())
    result = asyncio.run(drive(spec))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
