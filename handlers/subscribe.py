"""A new follower: by scanning a department's code (`subscribe` with `qrscene_<scene>`), or plainly."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from handlers.context import HandlerContext
from handlers.replies import HOW_TO, WELCOME, text_reply
from handlers.scan import scan_reply_text


def on_subscribe_scan(message: Any, ctx: HandlerContext) -> BaseReply:
    # wechatpy has already removed the qrscene_ prefix from scene_id
    return text_reply(message, WELCOME + "\n\n" + scan_reply_text(message.scene_id, message.source, ctx))


def on_subscribe(message: Any, ctx: HandlerContext) -> BaseReply:
    return text_reply(message, WELCOME + "\n\n" + HOW_TO)
