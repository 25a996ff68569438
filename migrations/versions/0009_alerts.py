"""core: alerting (notification channels, rules, alerts)

Revision ID: core_0009
Revises: core_0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0009"
down_revision = "core_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        # A webhook's URL in the clear; an Apprise URL (it often holds tokens) and the
        # signing secret encrypted with the app's SecretBox.
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("url_encrypted", sa.Text(), nullable=True),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("for_seconds", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("scope", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("channels", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "rule_id",
            sa.Integer(),
            sa.ForeignKey("alert_rules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("host_id", sa.String(160), nullable=False),
        # "" for a rule about a host (host_down, agent_stale): part of the unique key.
        sa.Column("container", sa.String(256), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False, server_default=""),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("firing_notice_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_notice_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notice_error", sa.Text(), nullable=True),
    )
    # One firing row per (rule, host, container), whichever replica inserts it.
    op.create_index(
        "uq_alerts_firing",
        "alerts",
        ["rule_id", "host_id", "container"],
        unique=True,
        sqlite_where=sa.text("state = 'firing'"),
        postgresql_where=sa.text("state = 'firing'"),
    )
    op.create_index("ix_alerts_started_at", "alerts", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_started_at", "alerts")
    op.drop_index("uq_alerts_firing", "alerts")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
    op.drop_table("alert_channels")
