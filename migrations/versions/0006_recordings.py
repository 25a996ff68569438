"""core: terminal recordings (metadata; the asciicast files live in the data dir)

Revision ID: core_0006
Revises: core_0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0006"
down_revision = "core_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(64), nullable=True),
        sa.Column("host_id", sa.String(160), nullable=False),
        sa.Column("container", sa.String(256), nullable=False),
        sa.Column("cmd", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("input_recorded", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("path", sa.String(255), nullable=False),
    )
    op.create_index("ix_recordings_user", "recordings", ["user"])
    op.create_index("ix_recordings_host_id", "recordings", ["host_id"])
    op.create_index("ix_recordings_started_at", "recordings", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_recordings_started_at", "recordings")
    op.drop_index("ix_recordings_host_id", "recordings")
    op.drop_index("ix_recordings_user", "recordings")
    op.drop_table("recordings")
