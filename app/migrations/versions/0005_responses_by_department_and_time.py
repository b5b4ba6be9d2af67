"""responses: the department's index becomes (department, time) (the detector's second look)

The detector's second look reads one department's answers in a time range. With indexes by
department alone and by (survey, time) it read every department's answers of that range (the whole
survey's day or two) to keep one department's. The department's index becomes (department, time):
the same look-ups by department, and the second look reads only its own rows. It cannot compete
with the unique (survey, department, respondent) index for a citizen's earlier-answer look-up (one
equality against three). On PostgreSQL with millions of answers the new index takes a while to build
(the table is locked for writes meanwhile): upgrade outside a campaign.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 02:00:00
"""

from alembic import op

INDEX = "ix_responses_department_id_submitted_at"

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.create_index(INDEX, ["department_id", "submitted_at"])
        batch.drop_index("ix_responses_department_id")


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.create_index("ix_responses_department_id", ["department_id"])
        batch.drop_index(INDEX)
