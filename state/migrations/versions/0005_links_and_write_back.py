"""link, write_back, dead_letter.target and .planhat_id: the reverse path

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "link",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("key_field", sa.String(length=32), nullable=False),
        sa.Column("key_value", sa.String(length=255), nullable=False),
        sa.Column("planhat_id", sa.String(length=64), nullable=True),
        sa.Column("planhat_fields", sa.JSON(), nullable=False),
        sa.Column("planhat_written_hash", sa.String(length=64), nullable=True),
        sa.Column("planhat_written_at", _aware(), nullable=True),
        sa.Column("planhat_read_hash", sa.String(length=64), nullable=True),
        sa.Column("planhat_read_at", _aware(), nullable=True),
        sa.Column("source_written_hash", sa.String(length=64), nullable=True),
        sa.Column("source_written_at", _aware(), nullable=True),
        sa.Column("source_read_hash", sa.String(length=64), nullable=True),
        sa.Column("source_read_at", _aware(), nullable=True),
        sa.Column("deleted_at", _aware(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "model", "key"),
    )
    op.create_index("ix_link_planhat_id", "link", ["connection", "model", "planhat_id"])
    op.create_table(
        "write_back",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("key_field", sa.String(length=32), nullable=False),
        sa.Column("key_value", sa.String(length=255), nullable=False),
        sa.Column("planhat_id", sa.String(length=64), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("inbox_id", sa.Integer(), nullable=True),
        sa.Column("enqueued_at", _aware(), nullable=False),
        sa.Column("next_attempt_at", _aware(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", _aware(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "source", "model", "key"),
    )
    op.create_index("ix_write_back_due", "write_back", ["connection", "next_attempt_at"])
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("planhat_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.drop_column("planhat_id")
        batch_op.drop_column("target")
    op.drop_index("ix_write_back_due", table_name="write_back")
    op.drop_table("write_back")
    op.drop_index("ix_link_planhat_id", table_name="link")
    op.drop_table("link")
