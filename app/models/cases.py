"""Follow-up cases of negative ratings (差评): one per response, with deadline, escalation, answer,
the citizen's re-rating, and the encrypted contact kept only with consent; and the holiday list."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, utcnow

CASE_STATUSES = ("open", "answered", "closed")
RERATINGS = ("satisfied", "basic", "dissatisfied")
NOTIFY_STATUSES = ("none", "pending", "sent", "failed")


class FollowupCase(Base):
    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'answered', 'closed')", name="status"),
        CheckConstraint("notify_status IN ('none', 'pending', 'sent', 'failed')", name="notify_status"),
        CheckConstraint(
            "rerating IS NULL OR rerating IN ('satisfied', 'basic', 'dissatisfied')", name="rerating"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"), unique=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    # Who must answer now: the department, or the level above once escalated (None: the city).
    holder_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    # The link of the answer page and the re-rating (unguessable; no personal data behind it).
    token: Mapped[str] = mapped_column(String(32), unique=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]  # the department's own deadline: "on time" is measured against it
    holder_due_at: Mapped[datetime]  # the current holder's deadline (moves on each escalation)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None]
    verification: Mapped[str | None] = mapped_column(Text)
    fix: Mapped[str | None] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None]
    # AES-GCM ciphertext of the openid ("<key id>.<nonce+ciphertext, base64url>"), only with consent;
    # erased when the case closes or its contact expires.
    contact: Mapped[str | None] = mapped_column(Text)
    contact_erased_at: Mapped[datetime | None]
    notify_status: Mapped[str] = mapped_column(String(10), default="none")
    notify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    notify_error: Mapped[str | None] = mapped_column(Text)
    rerating: Mapped[str | None] = mapped_column(String(12))
    rerated_at: Mapped[datetime | None]
    appealed_at: Mapped[datetime | None]
    appeal_reason: Mapped[str | None] = mapped_column(Text)


class Holiday(Base):
    """A day off on a weekday (holiday) or a working weekend day (workday, 调休补班)."""

    __tablename__ = "holidays"
    __table_args__ = (CheckConstraint("kind IN ('holiday', 'workday')", name="kind"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default="holiday")
    name: Mapped[str] = mapped_column(String(40), default="")
