"""WeChat message and event handlers: one small module per kind, each a function from a parsed
wechatpy message and a HandlerContext to a reply (or None: WeChat gets `success`).

No SQL, no Redis and no Flask request here: handlers get a HandlerContext (a router over the
scan-routing services of app/org, the delivery's deferred writes, the settings and the day).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wechatpy.replies import BaseReply

from handlers.context import DeferredWrites, HandlerContext, route_scan

__all__ = ["DeferredWrites", "HandlerContext", "dispatch", "route_scan"]

Handler = Callable[[Any, HandlerContext], BaseReply | None]


def dispatch(message: Any, ctx: HandlerContext) -> BaseReply | None:
    """Find the handler for this message's kind (events by event type, messages by type)."""
    from handlers import menu, other, scan, subscribe, text

    table: dict[str, Handler] = {
        "event:subscribe_scan": subscribe.on_subscribe_scan,
        "event:scan": scan.on_scan,
        "event:subscribe": subscribe.on_subscribe,
        "event:click": menu.on_click,
        "event:view": menu.on_view,
        "text": text.on_text,
    }
    kind = f"event:{message.event}" if message.type == "event" else message.type
    return table.get(kind, other.on_anything_else)(message, ctx)
