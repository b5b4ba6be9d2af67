"""A new follower: by scanning a department's code (`subscribe` with `qrscene_<scene>`), or plainly."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from handlers.context import HandlerContext, route_scan
from handlers.replies import HOW_TO, WELCOME, route_reply, text_reply


def on_subscribe_scan(message: Any, ctx: HandlerContext) -> BaseReply:
    # wechatpy has already removed the qrscene_ prefix from scene_id
    route = route_scan(ctx, message.scene_id, message.source)
    return route_reply(message, route, ctx.settings, welcome=True)


def on_subscribe(message: Any, ctx: HandlerContext) -> BaseReply:
    return text_reply(message, WELCOME + "\n\n" + HOW_TO)
