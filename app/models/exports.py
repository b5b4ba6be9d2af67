"""The history of scheduled and manual export runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, JsonDoc, utcnow


class ExportRun(Base):
    __tablename__ = "export_runs"
    __table_args__ = (
        # One run per schedule slot, however many schedulers fire it.
        UniqueConstraint("name", "slot"),
        CheckConstraint("status IN ('running', 'ok', 'failed', 'retrying')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="running")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    files: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    error: Mapped[str | None] = mapped_column(Text)
