"""A department's scan card: the picture of the 图文消息 a scan is answered with, drawn once per
department name (and card style) and kept in Redis, and the URL WeChat fetches it from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

import qr
from app.errors import NotFound, Unavailable
from app.models import Department

CARD_KEY = "wx:card:{code}:{version}"
CARD_TTL = 90 * 24 * 3600  # drawn again at most once a quarter per department


def card_version(settings, name: str) -> str:
    """Changes when the picture would: the department's name, the account's name, the drawing."""
    text = f"{qr.CARD_STYLE}|{settings.app.account_name}|{name}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def card_url(settings, code: str, name: str) -> str:
    """The picture's public URL; its `v` changes with the picture, so it may be cached for good."""
    return f"{settings.app.base_url}/cards/{code}.png?v={card_version(settings, name)}"


def department_card(session: Session, redis: Redis, settings, code: str) -> tuple[bytes, str]:
    """(PNG bytes, version) of a department's card, drawn on first use and then read from Redis
    (a client that does not decode responses)."""
    name = session.scalar(select(Department.name).where(Department.code == code)) if len(code) <= 20 else None
    session.rollback()
    if name is None:
        raise NotFound("没有找到这个单位。", field="department")
    version = card_version(settings, name)
    key = CARD_KEY.format(code=code, version=version)
    png = cast(bytes | None, redis.get(key))  # `redis` must be a bytes client (redis_store.raw)
    if png is None:
        try:
            png = qr.render_card(
                department_name=name,
                account_name=settings.app.account_name,
                font_path=Path(settings.qr.font_path) if settings.qr.font_path else None,
            )
        except qr.FontNotFound as exc:
            raise Unavailable(f"无法生成图片：找不到中文字体（{exc}）") from None
        redis.set(key, png, ex=CARD_TTL)
    return png, version
