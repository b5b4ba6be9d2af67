"""questionnaires: indicator codes, matrix rows and the 0-10 scale on questions; the account's menu

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 08:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD_KINDS = "kind IN ('single', 'multi', 'text')"
NEW_KINDS = "kind IN ('single', 'multi', 'text', 'scale')"


def upgrade() -> None:
    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("indicator", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("matrix", sa.String(length=32), nullable=True))
        batch_op.drop_constraint(batch_op.f("ck_questions_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_questions_kind"), NEW_KINDS)
    op.create_table(
        "wechat_menus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_menus")),
    )


def downgrade() -> None:
    op.drop_table("wechat_menus")
    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_questions_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_questions_kind"), OLD_KINDS)
        batch_op.drop_column("matrix")
        batch_op.drop_column("indicator")
