"""The official account's custom menu: written by admins as plain lines in the console, checked
against WeChat's limits line by line, kept in SQL, and published through the WeChat API.

One button per line, `名称 | click:KEY` or `名称 | view:https://…`; a line without `|` opens a
group whose sub-buttons follow as lines starting with `-`. At most 3 buttons, 5 per group.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.accounts import audit
from app.errors import Invalid
from app.models import WechatMenu, utcnow

MAX_BUTTONS, MAX_SUB_BUTTONS = 3, 5
MAX_NAME_BYTES, MAX_SUB_NAME_BYTES = 16, 60  # WeChat counts UTF-8 bytes: 5 and 20 Chinese characters
MAX_KEY_BYTES, MAX_URL_BYTES = 128, 1024
DEFAULT_MENU: dict[str, Any] = {
    "button": [
        {"type": "click", "name": "我要评价", "key": "EVALUATE"},
        {"type": "click", "name": "使用帮助", "key": "HELP"},
    ]
}
MENU_ID = 1


def current_menu(session: Session) -> dict[str, Any]:
    row = session.get(WechatMenu, MENU_ID)
    return row.definition if row is not None else DEFAULT_MENU


def menu_state(session: Session) -> WechatMenu | None:
    return session.get(WechatMenu, MENU_ID)


def menu_lines(menu: dict[str, Any]) -> str:
    """The menu in the console's line format (what parse_menu_lines reads back)."""
    lines = []
    for button in menu.get("button", []):
        if "sub_button" in button:
            lines.append(button["name"])
            lines.extend(f"- {_line(sub)}" for sub in button["sub_button"])
        else:
            lines.append(_line(button))
    return "\n".join(lines)


def _line(button: dict[str, Any]) -> str:
    target = f"view:{button['url']}" if button.get("type") == "view" else f"click:{button.get('key', '')}"
    return f"{button['name']} | {target}"


def parse_menu_lines(text: str) -> dict[str, Any]:
    """WeChat's menu JSON from the console's lines; Invalid naming the first bad line otherwise."""
    buttons: list[dict[str, Any]] = []
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue

        def fail(message: str, number: int = number) -> Invalid:
            return Invalid(f"第 {number} 行：{message}", field="menu")

        if line.startswith("-"):
            group = buttons[-1] if buttons else None
            if group is None or "sub_button" not in group:
                raise fail("子菜单（以 - 开头）前面要先写一个不带 | 的菜单组名称")
            if len(group["sub_button"]) >= MAX_SUB_BUTTONS:
                raise fail(f"每个菜单组最多 {MAX_SUB_BUTTONS} 个子菜单")
            group["sub_button"].append(_button(line[1:].strip(), MAX_SUB_NAME_BYTES, fail))
            continue
        if len(buttons) >= MAX_BUTTONS:
            raise fail(f"一级菜单最多 {MAX_BUTTONS} 个")
        if "|" in line:
            buttons.append(_button(line, MAX_NAME_BYTES, fail))
        else:
            buttons.append({"name": _name(line, MAX_NAME_BYTES, fail), "sub_button": []})
    if not buttons:
        raise Invalid("菜单不能为空：至少写一个按钮", field="menu")
    for group in buttons:
        if "sub_button" in group and not group["sub_button"]:
            raise Invalid(f"菜单组「{group['name']}」下面还没有子菜单（以 - 开头的行）", field="menu")
    return {"button": buttons}


def _name(text: str, limit: int, fail) -> str:
    if not text:
        raise fail("按钮名称不能为空")
    if len(text.encode()) > limit:
        raise fail(f"名称「{text}」太长（最多 {limit} 个字节，约 {limit // 3} 个汉字）")
    return text


def _button(line: str, limit: int, fail) -> dict[str, Any]:
    name, bar, target = (part.strip() for part in line.partition("|"))
    if not bar:
        raise fail("子菜单要写成：名称 | click:KEY 或 名称 | view:https://…")
    kind, _, value = (part.strip() for part in target.partition(":"))
    if kind == "click":
        if not value or len(value.encode()) > MAX_KEY_BYTES:
            raise fail(f"click 后面要写按钮的 KEY（1 到 {MAX_KEY_BYTES} 个字节），如 click:EVALUATE")
        return {"type": "click", "name": _name(name, limit, fail), "key": value}
    if kind == "view":
        if not value.startswith(("https://", "http://")) or len(value.encode()) > MAX_URL_BYTES:
            raise fail("view 后面要写以 https:// 或 http:// 开头的网址")
        return {"type": "view", "name": _name(name, limit, fail), "url": value}
    raise fail("按钮类型只能是 click 或 view，如：使用帮助 | click:HELP")


def save_menu(session: Session, text: str, actor: str) -> WechatMenu:
    """Check and store the edited menu (not yet published)."""
    definition = parse_menu_lines(text)
    row = session.get(WechatMenu, MENU_ID) or WechatMenu(id=MENU_ID, updated_by=actor)
    row.definition, row.updated_by, row.updated_at = definition, actor, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, actor, "wechat.menu_save", "menu", {"buttons": len(definition["button"])})
    return row


def publish_menu(session: Session, api, actor: str) -> dict[str, Any]:
    """Send the stored menu (the default one if none was saved) to WeChat through `api`."""
    definition = current_menu(session)
    api.create_menu(definition)
    row = session.get(WechatMenu, MENU_ID) or WechatMenu(id=MENU_ID, definition=definition, updated_by=actor)
    row.published_at, row.published_by = utcnow(), actor
    session.add(row)
    session.flush()
    audit.record(session, actor, "wechat.menu_publish", "menu", {"buttons": len(definition["button"])})
    return definition
