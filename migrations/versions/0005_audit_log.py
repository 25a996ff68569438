"""core: the audit log (hash-chained, append-only) and its chain head

Revision ID: core_0005
Revises: core_0004
Create Date: 2026-12-01

Two new tables, created in place on both databases (no batch rebuild of anything).
``audit_head`` has exactly one row (id 1): where the chain starts (the first id kept
after retention and the hash before it) and where it ends (the last id and its hash),
written in the same transaction as every append, so deleting the last row is noticed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0005"
down_revision = "core_0004"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_log",
        # Ids are given by the writer (head + 1 under the chain lock), never by a sequence:
        # a rolled-back insert must not leave a gap that looks like a removed row.
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("host_id", sa.String(160), nullable=True),
        sa.Column("container", sa.String(256), nullable=True),
        sa.Column("result", sa.String(64), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("recording_id", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_user", "audit_log", ["user"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_host_id", "audit_log", ["host_id"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("first_prev_hash", sa.String(64), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        head,
        [{"id": 1, "first_id": 1, "first_prev_hash": GENESIS, "last_id": 0, "last_hash": GENESIS}],
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_host_id", "audit_log")
    op.drop_index("ix_audit_log_action", "audit_log")
    op.drop_index("ix_audit_log_user", "audit_log")
    op.drop_index("ix_audit_log_at", "audit_log")
    op.drop_table("audit_log")
