"""Pre-aggregated counts, kept up to date by the drain job in the same transaction as the answers.

TallyRow: one row per (survey, department, city-local day, channel, status, segment option, question,
option), for day and week tallies. TallyMonth: the same counts rolled up per calendar month, read
whenever a tally's bucket and range are month-aligned (month, quarter, year, survey, none).
`question_id = 0, option_id = 0` rows count responses; `segment_option_id = 0` means the
respondent gave no segment answer (or the survey has no segment question). The zeros are
sentinels rather than NULLs so that the unique key holds on every engine.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, PrimaryKeyConstraint, String, UniqueConstraint
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
        Index("ix_tally_rows_survey_id_day", "survey_id", "day"),  # day and week tallies read a range
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survey_id: Mapped[int] = mapped_column(Integer)
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


class TallyMonth(Base):
    """The tally rows summed per month (`month` is its first day): about 20 times fewer rows.

    The key is the primary key, ordered for the reads: a survey's response rows (question 0) and
    its answer rows (question > 0) are each one contiguous range. On SQLite the table is clustered
    on it (WITHOUT ROWID), so a tally reads its counts straight from the key's b-tree.
    """

    __tablename__ = "tally_months"
    __table_args__ = (
        PrimaryKeyConstraint(
            "survey_id",
            "question_id",
            "option_id",
            "department_id",
            "month",
            "channel",
            "status",
            "segment_option_id",
        ),
        {"sqlite_with_rowid": False},
    )

    survey_id: Mapped[int] = mapped_column(Integer, autoincrement=False)
    question_id: Mapped[int] = mapped_column(Integer, autoincrement=False)
    option_id: Mapped[int] = mapped_column(Integer, autoincrement=False)
    department_id: Mapped[int] = mapped_column(Integer, autoincrement=False)
    month: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))
    segment_option_id: Mapped[int] = mapped_column(Integer, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
