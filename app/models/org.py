"""The org chart: city departments, counties and townships (three levels)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

LEVELS = ("city", "county", "township")
LEVEL_NAMES = {"city": "市直部门", "county": "县区", "township": "乡镇"}
CATEGORIES = ("党群部门", "政府部门", "垂直管理部门", "县区", "乡镇")


class Department(Base):
    __tablename__ = "departments"
    __table_args__ = (CheckConstraint("level IN ('city', 'county', 'township')", name="level"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(40), index=True)
    level: Mapped[str] = mapped_column(String(10))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    # "HH:MM-HH:MM" in city time for a department served at a window; answers outside are a signal.
    opening_hours: Mapped[str | None] = mapped_column(String(11))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    parent: Mapped[Department | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Department]] = relationship(
        back_populates="parent", order_by="Department.sort_order"
    )

    def __repr__(self) -> str:
        return f"<Department {self.code} {self.name}>"
