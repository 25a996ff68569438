"""core: container stats history (raw, 5-minute and hourly tiers in one table)

Revision ID: core_0007
Revises: core_0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0007"
down_revision = "core_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "container_stats",
        sa.Column("host_id", sa.String(160), nullable=False),
        sa.Column("container_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False, server_default=""),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("t", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("mem_usage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mem_limit_bytes", sa.BigInteger(), nullable=True),
        sa.Column("net_rx_bytes", sa.BigInteger(), nullable=True),
        sa.Column("net_tx_bytes", sa.BigInteger(), nullable=True),
        sa.Column("block_read_bytes", sa.BigInteger(), nullable=True),
        sa.Column("block_write_bytes", sa.BigInteger(), nullable=True),
        sa.Column("pids", sa.Integer(), nullable=True),
        # The history query's and the downsampling upsert's key.
        sa.UniqueConstraint("host_id", "container_id", "tier", "t", name="uq_container_stats_key"),
    )
    # Retention deletes by tier and age.
    op.create_index("ix_container_stats_tier_t", "container_stats", ["tier", "t"])


def downgrade() -> None:
    op.drop_index("ix_container_stats_tier_t", "container_stats")
    op.drop_table("container_stats")
