"""RQ jobs for WeChat API work: permanent QR tickets for a survey's departments, the menu, and the
access token renewed ahead of expiry."""

from __future__ import annotations

from flask import current_app

from app.db import db
from app.org.scenes import scene_rows
from app.redis_store import redis_store
from app.wechat_api import WeChatApi, default_menu


def create_wechat_tickets(survey_slug: str | None = None) -> int:
    """Create (or find cached) the permanent code of every scene of a survey; return how many."""
    settings = current_app.config["SETTINGS"]
    api = WeChatApi(settings, redis_store.client)
    rows = scene_rows(db.session, redis_store.client, settings, survey_slug)
    for row in rows:
        api.create_permanent_ticket(row["scene"])
    return len(rows)


def publish_menu() -> None:
    settings = current_app.config["SETTINGS"]
    WeChatApi(settings, redis_store.client).create_menu(default_menu(settings))


def refresh_access_token() -> str:
    """Every minute (app/schedule.py): renew the shared access token ahead of its expiry, by one
    holder across every process, so no request has to fetch one on its own path."""
    settings = current_app.config["SETTINGS"]
    if not (settings.wechat.appid and settings.wechat.secret):
        return "no WeChat credentials"
    return "refreshed" if WeChatApi(settings, redis_store.client).refresh_ahead() else "not due"
