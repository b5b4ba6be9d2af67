"""A new follower: by scanning a department's code (`subscribe` with `qrscene_<scene>`), or plainly."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from app.intake.respondents import respondent_key
from app.integrity.follows import record_follow
from handlers.context import HandlerContext, route_scan
from handlers.replies import HOW_TO, WELCOME, route_reply, text_reply


def remember_follow(message: Any, ctx: HandlerContext) -> None:
    """When this person followed (the stuffing detector looks for follow, rate and leave)."""
    key = respondent_key(ctx.settings.survey.respondent_secret, message.source)
    record_follow(ctx.effects, key, int(message.time) * 1000, ctx.settings.survey.intake_shards)


def on_subscribe_scan(message: Any, ctx: HandlerContext) -> BaseReply:
    # wechatpy has already removed the qrscene_ prefix from scene_id
    remember_follow(message, ctx)
    route = route_scan(ctx, message.scene_id, message.source)
    return route_reply(message, route, ctx.settings, welcome=True)


def on_subscribe(message: Any, ctx: HandlerContext) -> BaseReply:
    remember_follow(message, ctx)
    return text_reply(message, WELCOME + "\n\n" + HOW_TO)
