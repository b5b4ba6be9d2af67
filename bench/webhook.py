# Webhook benchmark (issue 3): signed, AES-encrypted scan events through gunicorn, closed loop
# (events per second) and open loop (p99 at a constant rate), each paired with the bare endpoint.
from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from bench.harness import Context, Result, Scenario
from bench.loadgen import http_request

ACCOUNT = "gh_bench000000"
SCENE = "s:demo-departments:D08"


def scan_requests(args: dict[str, Any], host: str) -> list[bytes]:
    """Factory (runs in the load generator): n safe-mode SCAN events, each a different follower,
    so every one runs the handler (no retry de-duplication shortcut)."""
    from app.config import DEV_WECHAT
    from app.dev.wechat_server import event_xml, seal

    wechat = SimpleNamespace(**DEV_WECHAT)  # the bench stack runs dev mode with the simulator's account
    prefix, now = args.get("prefix", uuid.uuid4().hex[:6]), int(time.time())
    out = []
    for i in range(int(args["n"])):
        xml = event_xml(ACCOUNT, f"oBENCH{prefix}{i:08d}", "SCAN", SCENE, create_time=now)
        sealed = seal(xml, wechat, str(args.get("mode", "safe")), timestamp=now, nonce=f"{prefix}{i}")
        path = "/wechat?" + urlencode(sealed.params)
        out.append(http_request("POST", host, path, {"Content-Type": "text/xml"}, sealed.body))
    return out


def run_webhook(ctx: Context) -> list[Result]:
    seconds = 3 if ctx.quick else 10
    rate = 100 if ctx.quick else 200
    bare_args = {"method": "POST", "body": "a=1"}
    with ctx.bare() as bare:
        base = ctx.load(
            bare.base_url, "bench.loadgen:constant_get", bare_args, duration=seconds, connections=16
        )
        base_open = ctx.load(
            bare.base_url,
            "bench.loadgen:constant_get",
            bare_args,
            rate=rate,
            count=rate * seconds,
            connections=64,
        )
    with ctx.stack("webhook", rq_workers=0) as stack:
        n = int(base.throughput * seconds * 1.2) + 100
        closed = ctx.load(
            stack.base_url,
            "bench.webhook:scan_requests",
            {"n": n, "prefix": "c"},
            duration=seconds,
            connections=16,
        )
        opened = ctx.load(
            stack.base_url,
            "bench.webhook:scan_requests",
            {"n": rate * seconds, "prefix": "o"},
            rate=rate,
            count=rate * seconds,
            connections=64,
        )
    all_200 = closed.statuses.get("200", 0) == closed.completed and closed.errors == 0
    ok_closed = all_200 and closed.throughput >= 0.5 * base.throughput
    ok_open = bool(
        opened.p99_ms is not None
        and opened.p99_ms < 100
        and not opened.errors
        and opened.statuses.get("200", 0) == opened.completed
    )
    return [
        Result(
            "webhook.scan.events_per_s",
            closed.throughput,
            "events/s",
            base.throughput,
            "bare POST",
            ">= 0.5 x bare, all 200",
            ok_closed,
            {"statuses": closed.statuses, "p99_ms": closed.p99_ms, "mode": "safe (AES)"},
        ),
        Result(
            f"webhook.scan.p99_at_{rate}_per_s",
            opened.p99_ms or 0,
            "ms",
            base_open.p99_ms,
            "bare POST p99",
            "< 100 ms, all 200",
            ok_open,
            {
                "p50_ms": opened.p50_ms,
                "p90_ms": opened.p90_ms,
                "max_ms": opened.max_ms,
                "statuses": opened.statuses,
                "achieved_per_s": opened.throughput,
            },
        ),
    ]


SCENARIOS = [Scenario("webhook.scan", run_webhook)]
