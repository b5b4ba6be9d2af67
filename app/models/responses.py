"""Citizens' responses and their answers, as moved into SQL by the drain job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, BigId, JsonDoc, utcnow

# counted: in the official figures; quarantined: held for integrity review; rejected: reviewed out.
RESPONSE_STATUSES = ("counted", "quarantined", "rejected")
CHANNELS = ("wechat", "web", "dev", "sql")


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (
        # One response per respondent per department per survey (the survey is the period).
        UniqueConstraint("survey_id", "department_id", "respondent_key"),
        CheckConstraint("status IN ('counted', 'quarantined', 'rejected')", name="status"),
        Index("ix_responses_survey_id_submitted_at", "survey_id", "submitted_at"),
        # A department's answers over time: the detector's second look (app.integrity.detector)
        Index("ix_responses_department_id_submitted_at", "department_id", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Set by the questionnaire form; a resent or double-clicked form carries the same key.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    # HMAC-SHA256 of the openid (hex); the raw openid is never stored.
    respondent_key: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(10), default="wechat")
    status: Mapped[str] = mapped_column(String(12), default="counted", index=True)
    # Integrity metadata: completion_ms, ua_class, ip_prefix, scanned; flags: straightline, no_scan…
    meta: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    flags: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None]
    review_reason: Mapped[str | None] = mapped_column(Text)
    # The stuffing detector's verdict (app.integrity): 0..100 and the signals behind it,
    # [[signal, strength 0..1, detail], ...]; NULL before it first looked (or with it switched off).
    score: Mapped[int | None] = mapped_column(SmallInteger)
    reasons: Mapped[list[Any] | None] = mapped_column(JsonDoc)

    answers: Mapped[list[Answer]] = relationship(back_populates="response", cascade="all, delete-orphan")


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (Index("ix_answers_question_id_option_id", "question_id", "option_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"))
    option_id: Mapped[int | None] = mapped_column(ForeignKey("options.id"))
    text: Mapped[str | None] = mapped_column(Text)

    response: Mapped[Response] = relationship(back_populates="answers")
