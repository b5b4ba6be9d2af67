"""The words the account says: kind Chinese replies shared by the handlers."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import ArticlesReply, BaseReply, TextReply

from app.org.cards import card_url
from app.org.scenes import Route

HOW_TO = (
    "参与评价很简单：\n"
    "1. 在办事窗口或公告栏扫描单位的评价二维码；\n"
    "2. 或直接给我们发送单位名称，例如“教育局”，我们会把问卷链接发给您。\n"
    "每个单位每人评价一次，约需1分钟。"
)
WELCOME = "您好，欢迎关注！这里是市民意调查平台，您的每一条评价都会被认真对待。"
UNKNOWN_CODE = (
    "抱歉，这个二维码暂时无法识别。您可以直接发送单位名称（例如“教育局”），我们会把问卷链接发给您。"
)
NOT_FOUND = "没有找到与“{text}”相关的单位。请换个说法再试，例如发送“教育局”或单位编码。"


def text_reply(message: Any, content: str) -> TextReply:
    return TextReply(message=message, content=content)


def link(url: str, label: str) -> str:
    return f'<a href="{url}">{label}</a>'


def route_text(route: Route) -> str:
    """What a scan (or a department keyword) leads to, said kindly: a link or the reason for none."""
    dept = route.department.name if route.department else ""
    title = route.survey.title if route.survey else "本次调查"
    if route.url:
        answer = link(route.url, "点此填写问卷")
        return f"欢迎参与{title}！\n\n请为「{dept}」评价：\n{answer}（约1分钟）\n\n感谢您的参与！"
    if route.problem in ("unknown_scene", "unknown_department"):
        return UNKNOWN_CODE
    if route.problem in ("department_inactive", "not_covered"):
        return f"「{dept}」目前不在评价范围内，感谢您的关注！"
    if route.problem == "not_open":
        return f"{title}还没有开始，开始后欢迎再次扫码为「{dept}」评价。"
    if route.problem == "closed":
        return f"{title}已经结束，感谢您的关注！下次调查开始后欢迎再来为「{dept}」评价。"
    return f"目前没有正在进行的「{dept}」满意度调查，感谢您的关注！"


def route_reply(message: Any, route: Route, settings: Any, welcome: bool = False) -> BaseReply:
    """The answer to a scan: a card (图文消息: the department, the survey, its picture and the link)
    when there is a link and `wechat.scan_reply` is "news", else the text of route_text()."""
    if route.url and route.department and settings.wechat.scan_reply == "news":
        title = route.survey.title if route.survey else "满意度调查"
        description = f"{title}，约1分钟。点击进入问卷，感谢您的参与！"
        article = {
            "title": f"请为「{route.department.name}」评价",
            "description": (WELCOME + "\n" + description) if welcome else description,
            "image": card_url(settings, route.department.code, route.department.name),
            "url": route.url,
        }
        return ArticlesReply(message=message, articles=[article])
    text = route_text(route)
    return text_reply(message, WELCOME + "\n\n" + text if welcome else text)
