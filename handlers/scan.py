"""A scan of a department's code by an existing follower (`SCAN`, EventKey = the scene)."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from app.org.scenes import Route, route_scan
from handlers import HandlerContext
from handlers.replies import route_reply


def scan_route(event_key: str, openid: str, ctx: HandlerContext) -> Route:
    return route_scan(
        ctx.session, ctx.effects, ctx.settings, event_key, openid, ctx.today, ctx.routes, ctx.generation
    )


def on_scan(message: Any, ctx: HandlerContext) -> BaseReply:
    return route_reply(message, scan_route(message.scene_id, message.source, ctx), ctx.settings)
