"""The official account's custom menu as admins edit it in the console, and when it was published."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JsonDoc, utcnow


class WechatMenu(Base):
    """One row (id 1): the menu's buttons in WeChat's own shape ({"button": [...]})."""

    __tablename__ = "wechat_menus"

    id: Mapped[int] = mapped_column(primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(64))
