"""A scan of a department's code by an existing follower (`SCAN`, EventKey = the scene)."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from app.org.scenes import route_scan
from handlers import HandlerContext
from handlers.replies import route_text, text_reply


def scan_reply_text(event_key: str, openid: str, ctx: HandlerContext) -> str:
    route = route_scan(
        ctx.session, ctx.effects, ctx.settings, event_key, openid, ctx.today, ctx.routes, ctx.generation
    )
    return route_text(route)


def on_scan(message: Any, ctx: HandlerContext) -> BaseReply:
    return text_reply(message, scan_reply_text(message.scene_id, message.source, ctx))
