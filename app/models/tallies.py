"""Pre-aggregated counts, kept up to date by the drain job in the same transaction as the answers.

One row per (survey, department, day, channel, status, segment option, question, option).
`question_id = 0, option_id = 0` rows count responses; `segment_option_id = 0` means the
respondent gave no segment answer (or the survey has no segment question). The zeros are
sentinels rather than NULLs so that the unique key holds on every engine.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, BigId, utcnow


class TallyRow(Base):
    __tablename__ = "tally_rows"
    __table_args__ = (
        UniqueConstraint(
            "survey_id",
            "department_id",
            "day",
            "channel",
            "status",
            "segment_option_id",
            "question_id",
            "option_id",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survey_id: Mapped[int] = mapped_column(Integer, index=True)
    department_id: Mapped[int] = mapped_column(Integer)
    day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))
    segment_option_id: Mapped[int] = mapped_column(Integer, default=0)
    question_id: Mapped[int] = mapped_column(Integer, default=0)
    option_id: Mapped[int] = mapped_column(Integer, default=0)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    # When the count last changed: the pull API's incremental `since` reads it.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
