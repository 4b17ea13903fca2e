"""link: the flapping guard's counters; dead_letter.quarantine

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_written_to", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("bounces", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("bounced_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("quarantine", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.drop_column("quarantine")
    with op.batch_alter_table("link", schema=None) as batch_op:
        batch_op.drop_column("quarantined_at")
        batch_op.drop_column("bounced_since")
        batch_op.drop_column("bounces")
        batch_op.drop_column("last_written_to")
