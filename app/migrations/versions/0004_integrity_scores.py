"""integrity: a score and its reasons per response, opening hours per department

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 08:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("score", sa.SmallInteger(), nullable=True))
        batch.add_column(
            sa.Column(
                "reasons",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
                nullable=True,
            )
        )
    with op.batch_alter_table("departments") as batch:
        batch.add_column(sa.Column("opening_hours", sa.String(length=11), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("departments") as batch:
        batch.drop_column("opening_hours")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("reasons")
        batch.drop_column("score")
