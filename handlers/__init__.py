"""WeChat message and event handlers: one small module per kind, each a function from a parsed
wechatpy message and a HandlerContext to a reply (or None: WeChat gets `success`).

No SQL and no Flask request here: handlers call the services in app/ with the context's
session, Redis client and settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from redis import Redis
from sqlalchemy.orm import Session
from wechatpy.replies import BaseReply

from app.org.scenes import RouteCache


@dataclass(frozen=True)
class HandlerContext:
    session: Session
    redis: Redis
    settings: Any
    today: date
    routes: RouteCache | None = None  # the process's route cache (the webhook passes it)
    generation: str = ""  # the routing generation this delivery read from Redis
    writes: DeferredWrites | None = None  # the webhook's: side effects made with the reply, or never

    @property
    def effects(self) -> Redis | DeferredWrites:
        """Where handlers make their Redis side effects: the delivery's DeferredWrites, or Redis."""
        return self.writes if self.writes is not None else self.redis


class DeferredWrites:
    """Redis writes a handler asks for (`set` with a TTL, all it needs), made by the webhook in the
    same atomic call that stores the reply: only for a message's first delivery, never for a retry."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str, int]] = []

    def set(self, name: str, value: str | int, ex: int) -> None:
        self.pending.append((name, str(value), int(ex)))


Handler = Callable[[Any, HandlerContext], BaseReply | None]


def dispatch(message: Any, ctx: HandlerContext) -> BaseReply | None:
    """Find the handler for this message's kind (events by event type, messages by type)."""
    from handlers import menu, other, scan, subscribe, text, unsubscribe

    table: dict[str, Handler] = {
        "event:subscribe_scan": subscribe.on_subscribe_scan,
        "event:scan": scan.on_scan,
        "event:subscribe": subscribe.on_subscribe,
        "event:unsubscribe": unsubscribe.on_unsubscribe,
        "event:click": menu.on_click,
        "event:view": menu.on_view,
        "text": text.on_text,
    }
    kind = f"event:{message.event}" if message.type == "event" else message.type
    return table.get(kind, other.on_anything_else)(message, ctx)
