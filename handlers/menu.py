"""Taps on the custom menu: `CLICK` buttons get an answer; `VIEW` buttons open a page by themselves."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply

from handlers.context import HandlerContext
from handlers.replies import HOW_TO, text_reply

HELP = (
    "市民意调查平台使用帮助：\n"
    "· 扫描单位二维码即可评价该单位；\n"
    "· 发送单位名称或编码，获取问卷链接；\n"
    "· 每个单位每人每期评价一次，您的身份信息不会被公开。"
)


def on_click(message: Any, ctx: HandlerContext) -> BaseReply:
    if message.key == "EVALUATE":
        return text_reply(message, HOW_TO)
    return text_reply(message, HELP)


def on_view(message: Any, ctx: HandlerContext) -> None:
    return None  # the page opens in WeChat's browser; nothing to say
