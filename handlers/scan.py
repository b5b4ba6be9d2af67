"""A scan of a department's code by an existing follower (`SCAN`, EventKey = the scene)."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from handlers.context import HandlerContext, route_scan
from handlers.replies import route_text, text_reply


def scan_reply_text(event_key: str, openid: str, ctx: HandlerContext) -> str:
    return route_text(route_scan(ctx, event_key, openid))


def on_scan(message: Any, ctx: HandlerContext) -> BaseReply:
    return text_reply(message, scan_reply_text(message.scene_id, message.source, ctx))
