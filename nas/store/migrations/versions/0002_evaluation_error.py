"""a failed evaluation keeps its reason

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nas_evaluations", sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nas_evaluations") as batch:
        batch.drop_column("error")
