"""responses: an index by department, survey and time (the detector's second look at a department's day)

The second look reads one department's answers in a time range. With indexes by department alone and
by (survey, time) it read every department's answers of that range (the whole survey's day or two) to
keep one department's. The department's index becomes (department, survey, time): the same look-ups by
department, and the second look reads only its own rows. On PostgreSQL with millions of answers the
new index takes a while to build (writes to the table wait meanwhile): upgrade outside a campaign.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:40:00
"""

from alembic import op

INDEX = "ix_responses_department_id_survey_id_submitted_at"

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.create_index(INDEX, ["department_id", "survey_id", "submitted_at"])
        batch.drop_index("ix_responses_department_id")


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.create_index("ix_responses_department_id", ["department_id"])
        batch.drop_index(INDEX)
