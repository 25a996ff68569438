"""docker_agent: latest report per host

Revision ID: da0001_reports
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "da0001_reports"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "docker_agent_reports",
        sa.Column("host", sa.String(length=253), primary_key=True),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("container_count", sa.Integer(), nullable=False),
        sa.Column("running_count", sa.Integer(), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("payload_bytes", sa.Integer(), nullable=False),
        sa.Column("engine_json", sa.Text(), nullable=False),
        sa.Column("host_facts_json", sa.Text(), nullable=False),
        sa.Column("containers_json", sa.Text(), nullable=False),
    )
    op.create_index("ix_docker_agent_reports_received_at", "docker_agent_reports", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_docker_agent_reports_received_at", table_name="docker_agent_reports")
    op.drop_table("docker_agent_reports")
