"""What a handler is given: the HandlerContext (router, deferred writes, settings, day) and the
one routing call a scan handler makes through it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app.config import Settings
from app.org.scenes import Route, ScanRouter


@dataclass(frozen=True)
class HandlerContext:
    """All a handler may use: no raw Redis and no session, so that a retried delivery cannot repeat
    a side effect. Routing goes through the router; the one write a handler makes (the scan memory)
    goes to `effects`, which the webhook makes together with the reply, for a first delivery only."""

    router: ScanRouter
    effects: DeferredWrites
    settings: Settings
    today: date


def route_scan(ctx: HandlerContext, event_key: str | None, openid: str) -> Route:
    """Where a scanned code leads, remembering the scan (through the context's effects)."""
    return ctx.router.route_scan(ctx.effects, event_key, openid, ctx.today)


class DeferredWrites:
    """Redis writes a handler asks for (`set` with a TTL, all it needs), made by the webhook in the
    same atomic call that stores the reply: only for a message's first delivery, never for a retry."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str, int]] = []

    def set(self, name: str, value: str | int, ex: int) -> None:
        self.pending.append((name, str(value), int(ex)))
