# The journey load generator, run as its own process (`python -m bench.journey_client`, a JSON spec
# on stdin): fresh citizens over asyncio, each with its own openid and cookies, reaching the app
# through a stand-in for nginx's keep-alive pool (or each with connections of their own).
"""One journey, as a citizen at a service window makes it:

  scan     WeChat's server POSTs the signed SCAN event to /wechat; the reply carries the link
  form     with the link's scan pass (wechat.scan_pass_seconds, the default): the questionnaire at
           once, and on to the answer; without one (passes off, or a retry):
  open     the WeChat browser GETs the link: no identity yet, 302 to WeChat's OAuth
  oauth    GET the (simulated) authorize URL: 302 back to /oauth/callback with a code
  callback GET /oauth/callback: the app exchanges the code (the simulator's latency) and answers
           with the questionnaire: 200, the form and its token
  answer   POST the answers: 200, the thank-you page

A "系统繁忙" answer from the simulator (its error rate) ends the callback in the kind 503 retry
page; the citizen taps 重试 (the journey goes round open/oauth/callback once more) and it is
counted as a retry, not an error; a keep-alive connection the server closed while idle is
reopened and the request sent again, as browsers do (counted too). Anything else unexpected, or
no answer within the timeout, is an error. Closed loop: `concurrency` citizens, each starting a
new journey when theirs ends. Open loop: a new citizen every 1/rate s whatever happened, latency
from the intended start; how late this process itself began each journey is reported beside it
(`started_late`), so the server's share of a slow journey can be told from the generator's.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
import time
import uuid
from collections import Counter, defaultdict
from http.cookies import SimpleCookie
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode, urlsplit

STEPS = ("scan", "open", "oauth", "callback", "form", "answer")
WECHAT_UA = "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Mobile Safari/537.36 MicroMessenger/8.0.47"
ACCOUNT = "gh_bench000000"
SCENE = "s:demo-departments:D08"
ANSWERS = {
    "q_overall": "satisfied", "q_service_attitude": "basic", "q_efficiency": "satisfied",
    "q_openness": "very_satisfied", "q_integrity": "satisfied", "q_respondent_type": "citizen",
}  # fmt: skip
# The scan's reply: a card (图文消息, wechat.scan_reply = "news") carries its link as <Url>, a text as href.
LINK = re.compile(r'<Url><!\[CDATA\[([^\]]+)\]\]></Url>|href="([^"]+)"')
TOKEN = re.compile(rb'name="form_token" value="([^"]+)"')


class JourneyError(Exception):
    pass


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Upstream:
    """nginx's keep-alive pool to gunicorn (deploy/nginx-wxsurvey.conf: `keepalive 32` per nginx
    worker process): a request takes the connection cached last, or opens one when none is idle;
    an answered connection goes back to the cache, and when the cache is full its oldest is closed."""

    def __init__(self, where: tuple[str, int], idle: int) -> None:
        self.where, self.idle = where, idle
        self.cache: list[Conn] = []

    async def take(self) -> tuple[Conn, bool]:
        if self.cache:
            return self.cache.pop(), True
        return await asyncio.open_connection(*self.where), False

    def give_back(self, conn: Conn) -> None:
        self.cache.append(conn)
        if len(self.cache) > self.idle:
            self.cache.pop(0)[1].close()


class Browser:
    """One citizen's phone: a keep-alive connection per host and a cookie jar. Its requests to the
    app go through `upstream` when there is one (nginx's pool), as in the deployment."""

    def __init__(self, timeout: float, upstream: Upstream | None = None) -> None:
        self.conns: dict[tuple[str, int], Conn] = {}
        self.cookies: dict[str, str] = {}
        self.timeout = timeout
        self.reconnects = 0
        self.upstream = upstream

    async def request(self, method: str, url: str, body: bytes = b"", headers: dict | None = None):
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"User-Agent: {WECHAT_UA}"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        return await asyncio.wait_for(self._send((host, port), payload), self.timeout)

    async def _send(self, where: tuple[str, int], payload: bytes):
        upstream = self.upstream if self.upstream is not None and self.upstream.where == where else None
        if upstream is not None:
            conn, reused = await upstream.take()
        else:
            found = self.conns.get(where)
            reused = found is not None
            conn = self.conns[where] = found or await asyncio.open_connection(*where)
        reader, writer = conn
        try:
            try:
                writer.write(payload)
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError):
                writer.close()
                self.conns.pop(where, None)
                if not reused:
                    raise
                # The server closed an idle keep-alive connection as we reused it: a browser opens a
                # new one and sends the request again (nothing of it was answered).
                self.reconnects += 1
                return await self._send(where, payload)
            status, headers, length = self._head(head)
            data = await reader.readexactly(length) if length else b""
        except asyncio.CancelledError:  # the citizen's timeout: the connection is not reused
            writer.close()
            self.conns.pop(where, None)
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
            self.conns.pop(where, None)
        elif upstream is not None:
            upstream.give_back(conn)
        return status, headers, data

    def _head(self, head: bytes) -> tuple[int, dict[str, str], int]:
        """The status, the headers (lower-case names) and the body's length; cookies into the jar."""
        lines = head.decode("latin-1").split("\r\n")
        status, headers, length = int(lines[0].split()[1]), {}, 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "set-cookie":
                cookie = SimpleCookie(value)
                for key, morsel in cookie.items():
                    self.cookies[key] = morsel.value
            elif name:
                headers[name] = value
        return status, headers, length

    def close(self) -> None:
        for _, writer in self.conns.values():
            writer.close()


class Journeys:
    def __init__(self, spec: dict[str, Any]) -> None:
        from app.config import DEV_WECHAT
        from app.dev import wechat_server  # (here, before the clock starts: 0.6 s in a fresh process)

        self.seal, self.event_xml = wechat_server.seal, wechat_server.event_xml
        self.base = spec["url"].rstrip("/")
        app = urlsplit(self.base)
        idle = int(spec.get("upstream_keepalive") or 0)  # 0: each citizen's own connections to the app
        self.upstream = Upstream((app.hostname or "127.0.0.1", app.port or 80), idle) if idle else None
        self.timeout = float(spec.get("timeout", 30))
        self.wechat = SimpleNamespace(**DEV_WECHAT)
        self.prefix = uuid.uuid4().hex[:6]
        self.count = 0
        self.steps: dict[str, list[float]] = defaultdict(list)
        self.totals: list[float] = []
        self.late: list[float] = []  # from a journey's due time to its first request
        self.errors: Counter[str] = Counter()
        self.retries = 0
        self.reconnects = 0
        self.completed = 0

    def scan_event(self, openid: str) -> tuple[str, bytes]:
        now = int(time.time())
        event = self.event_xml(ACCOUNT, openid, "SCAN", SCENE, create_time=now)
        sealed = self.seal(event, self.wechat, "plaintext")
        return "/wechat?" + urlencode(sealed.params), sealed.body

    async def _step(self, name: str, coro) -> tuple[int, dict, bytes]:
        started = time.perf_counter()
        result = await coro
        self.steps[name].append(time.perf_counter() - started)
        return result

    async def one(self, due: float) -> None:
        self.late.append(time.perf_counter() - due)
        self.count += 1
        openid = f"oJRNY{self.prefix}{self.count:09d}"
        phone, wechat_server = Browser(self.timeout, self.upstream), Browser(self.timeout, self.upstream)
        try:
            path, body = self.scan_event(openid)
            status, _, reply = await self._step(
                "scan", wechat_server.request("POST", self.base + path, body, {"Content-Type": "text/xml"})
            )
            found = LINK.search(reply.decode())
            if status != 200 or not found:
                raise JourneyError(f"scan {status}")
            link = (found.group(1) or found.group(2)).replace("&amp;", "&")
            started = time.perf_counter()
            status, headers, page = await phone.request("GET", link)
            if status == 200:  # the link's scan pass: the questionnaire at once
                self.steps["form"].append(time.perf_counter() - started)
            else:
                self.steps["open"].append(time.perf_counter() - started)
                page = await self._identify(phone, link, openid, status, headers)
            token = TOKEN.search(page)
            if token is None:
                raise JourneyError("form without its token")
            answers = urlencode({**ANSWERS, "form_token": token.group(1).decode()}).encode()
            form_type = {"Content-Type": "application/x-www-form-urlencoded"}
            action = link.partition("?")[0]
            status, _, thanks = await self._step("answer", phone.request("POST", action, answers, form_type))
            if status != 200 or "感谢".encode() not in thanks:
                raise JourneyError(f"answer {status}")
            self.completed += 1
            self.totals.append(time.perf_counter() - due)
        except JourneyError as exc:
            self.errors[str(exc)] += 1
        except TimeoutError:
            self.errors["timeout"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
            self.errors[type(exc).__name__] += 1
        finally:
            self.reconnects += phone.reconnects + wechat_server.reconnects
            phone.close()
            wechat_server.close()

    async def _identify(self, phone: Browser, link: str, openid: str, status: int, headers: dict) -> bytes:
        """No scan pass (or passes off): the 302 to OAuth, the simulator's authorize page, the
        callback (its code exchange) with the form; the page's body."""
        for attempt in (1, 2):
            if attempt == 2:
                status, headers, _ = await self._step("open", phone.request("GET", link))
            if status != 302:
                raise JourneyError(f"open {status}")
            # WeChat knows who is asking: the simulator takes the openid as an argument.
            authorize = headers["location"].partition("#")[0] + "&openid=" + openid
            status, headers, _ = await self._step("oauth", phone.request("GET", authorize))
            if status != 302:
                raise JourneyError(f"oauth {status}")
            status, headers, page = await self._step("callback", phone.request("GET", headers["location"]))
            if status == 200:
                return page
            if status == 503 and attempt == 1:  # the kind retry page: the citizen taps 重试
                self.retries += 1
                continue
            break
        raise JourneyError(f"callback {status}")


def _percentiles(values: list[float]) -> dict[str, float | None]:
    values = sorted(values)

    def pct(p: float) -> float | None:
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 1) if values else None

    return {"p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "n": len(values)}


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    journeys = Journeys(spec)
    duration, rate = float(spec["duration"]), spec.get("rate")
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if rate:
        tasks, i = [], 0
        while True:
            due = start + i / rate
            if due - start >= duration:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(journeys.one(due)))
            i += 1
        await asyncio.gather(*tasks)
    else:
        stop_at = start + duration

        async def citizen() -> None:
            while time.perf_counter() < stop_at:
                await journeys.one(time.perf_counter())

        await asyncio.gather(*(citizen() for _ in range(int(spec["concurrency"]))))
    elapsed = time.perf_counter() - start
    cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "started": journeys.count,
        "completed": journeys.completed,
        "errors": sum(journeys.errors.values()),
        "error_kinds": dict(journeys.errors),
        "retries": journeys.retries,
        "stale_connections_reopened": journeys.reconnects,
        "duration_s": round(elapsed, 2),
        "journeys_per_s": round(journeys.completed / elapsed, 1),
        "journey": _percentiles(journeys.totals),
        "started_late": _percentiles(journeys.late),
        "steps": {name: _percentiles(journeys.steps[name]) for name in STEPS},
        "client_cpu_s": round(
            cpu_end.ru_utime - cpu_start.ru_utime + cpu_end.ru_stime - cpu_start.ru_stime, 2
        ),
    }


def main() -> int:
    print(json.dumps(asyncio.run(drive(json.loads(sys.stdin.read())))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
