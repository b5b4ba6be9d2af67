"""Text messages: a department's name or code → its questionnaire link; 评价 → how to; else help."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from handlers.context import HandlerContext
from handlers.menu import HELP
from handlers.replies import HOW_TO, NOT_FOUND, link, route_text, text_reply

HOW_TO_WORDS = ("评价", "评议", "打分", "满意度", "问卷", "调查", "怎么评价", "我要评价")
HELP_WORDS = ("帮助", "help", "?", "？", "你好", "您好")


def on_text(message: Any, ctx: HandlerContext) -> BaseReply:
    content = (message.content or "").strip()
    if content in HOW_TO_WORDS:
        return text_reply(message, HOW_TO)
    if not content or content.lower() in HELP_WORDS:
        return text_reply(message, HELP)
    routes = ctx.router.routes_for_keyword(content, ctx.today)
    if not routes:
        return text_reply(message, NOT_FOUND.format(text=content[:20]) + "\n\n" + HOW_TO)
    if len(routes) == 1:
        return text_reply(message, route_text(routes[0]))
    lines = ["找到以下单位，请点击要评价的单位："]
    for route in routes:
        name = route.department.name if route.department else ""
        lines.append(f"· {link(route.url, name)}" if route.url else f"· {name}（暂无进行中的调查）")
    return text_reply(message, "\n".join(lines))
