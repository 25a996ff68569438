"""core: container timelines (start, die, restart, oom, health changes)

Revision ID: core_0008
Revises: core_0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0008"
down_revision = "core_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "container_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("host_id", sa.String(160), nullable=False),
        sa.Column("container_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False, server_default=""),
        sa.Column("t", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("health", sa.String(32), nullable=True),
        # Replicas record the same engine event: the engine's time makes it one row.
        # Also the timeline query's index (host, container, newest first).
        sa.UniqueConstraint(
            "host_id", "container_id", "t", "event", name="uq_container_events_key"
        ),
    )
    # Retention and "everything since" (alert rules) read by time.
    op.create_index("ix_container_events_t", "container_events", ["t"])


def downgrade() -> None:
    op.drop_index("ix_container_events_t", "container_events")
    op.drop_table("container_events")
