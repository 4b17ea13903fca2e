"""link.field_times, .owed_planhat, .owed_source: ownership and conflicts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("field_times", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("owed_planhat", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("owed_source", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("link", schema=None) as batch_op:
        batch_op.drop_column("owed_source")
        batch_op.drop_column("owed_planhat")
        batch_op.drop_column("field_times")
