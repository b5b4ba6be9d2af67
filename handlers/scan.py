"""A scan of a department's code by an existing follower (`SCAN`, EventKey = the scene)."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from handlers.context import HandlerContext, route_scan
from handlers.replies import route_reply


def on_scan(message: Any, ctx: HandlerContext) -> BaseReply:
    return route_reply(message, route_scan(ctx, message.scene_id, message.source), ctx.settings)
