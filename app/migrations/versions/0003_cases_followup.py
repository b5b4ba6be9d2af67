"""cases: follow-up of negative ratings, holidays, published results

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 08:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", BigId, nullable=False),
        sa.Column("response_id", BigId, nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("holder_department_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("opened_at", When, nullable=False),
        sa.Column("due_at", When, nullable=False),
        sa.Column("holder_due_at", When, nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("escalated_at", When, nullable=True),
        sa.Column("verification", sa.Text(), nullable=True),
        sa.Column("fix", sa.Text(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("answered_at", When, nullable=True),
        sa.Column("answered_by", sa.String(length=64), nullable=True),
        sa.Column("closed_at", When, nullable=True),
        sa.Column("contact", sa.Text(), nullable=True),
        sa.Column("contact_erased_at", When, nullable=True),
        sa.Column("notify_status", sa.String(length=10), nullable=False),
        sa.Column("notify_attempts", sa.Integer(), nullable=False),
        sa.Column("notify_error", sa.Text(), nullable=True),
        sa.Column("rerating", sa.String(length=12), nullable=True),
        sa.Column("rerated_at", When, nullable=True),
        sa.Column("appealed_at", When, nullable=True),
        sa.Column("appeal_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'answered', 'closed')", name=op.f("ck_cases_status")),
        sa.CheckConstraint(
            "notify_status IN ('none', 'pending', 'sent', 'failed')", name=op.f("ck_cases_notify_status")
        ),
        sa.CheckConstraint(
            "rerating IS NULL OR rerating IN ('satisfied', 'basic', 'dissatisfied')",
            name=op.f("ck_cases_rerating"),
        ),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_cases_department_id_departments")
        ),
        sa.ForeignKeyConstraint(
            ["holder_department_id"],
            ["departments.id"],
            name=op.f("fk_cases_holder_department_id_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["response_id"], ["responses.id"], name=op.f("fk_cases_response_id_responses"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["survey_id"], ["surveys.id"], name=op.f("fk_cases_survey_id_surveys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("response_id", name=op.f("uq_cases_response_id")),
        sa.UniqueConstraint("token", name=op.f("uq_cases_token")),
    )
    op.create_index(op.f("ix_cases_department_id"), "cases", ["department_id"])
    op.create_index(op.f("ix_cases_holder_department_id"), "cases", ["holder_department_id"])
    op.create_index(op.f("ix_cases_status"), "cases", ["status"])
    op.create_index(op.f("ix_cases_survey_id"), "cases", ["survey_id"])
    op.create_table(
        "holidays",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.CheckConstraint("kind IN ('holiday', 'workday')", name=op.f("ck_holidays_kind")),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_holidays")),
    )
    with op.batch_alter_table("surveys") as batch:
        batch.add_column(sa.Column("results_published_at", When, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("surveys") as batch:
        batch.drop_column("results_published_at")
    op.drop_table("holidays")
    op.drop_table("cases")
