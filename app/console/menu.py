"""Console page of the official account's menu (city admins): edit it as lines, then publish it
through the WeChat API (the simulator's fake API in dev mode)."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from app.console.blueprint import bp
from app.console.guard import actor, require_role
from app.db import db
from app.errors import Invalid
from app.org.menu import current_menu, menu_lines, menu_state, publish_menu, save_menu
from app.redis_store import redis_store
from app.wechat_api import WeChatApi, WeChatApiError


def _page(text: str | None = None, error: str | None = None, status: int = 200):
    body = render_template("console/menu.html", nav="wechat_menu", state=menu_state(db.session),
                           text=menu_lines(current_menu(db.session)) if text is None else text,
                           error=error)  # fmt: skip
    return body, status


@bp.get("/menu")
def wechat_menu():
    require_role("city_admin")
    return _page()


@bp.post("/menu")
def save_wechat_menu():
    require_role("city_admin")
    text = request.form.get("menu", "")
    try:
        save_menu(db.session, text, actor())
    except Invalid as exc:
        db.session.rollback()
        return _page(text, exc.message, 400)
    db.session.commit()
    if request.form.get("publish"):
        return publish_wechat_menu()
    flash("菜单已保存，尚未发布到公众号", "ok")
    return redirect(url_for("console.wechat_menu"))


@bp.post("/menu/publish")
def publish_wechat_menu():
    require_role("city_admin")
    api = WeChatApi(current_app.config["SETTINGS"], redis_store.client)
    try:
        publish_menu(db.session, api, actor())
    except WeChatApiError as exc:
        db.session.rollback()
        flash(f"发布失败：{exc.message}", "error")
        return redirect(url_for("console.wechat_menu"))
    db.session.commit()
    flash("菜单已发布到公众号（微信客户端可能需要几分钟才会更新）", "ok")
    return redirect(url_for("console.wechat_menu"))
