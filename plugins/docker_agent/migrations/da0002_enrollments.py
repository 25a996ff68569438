"""docker_agent: per-host agent tokens (enrollments)

Revision ID: da0002_enrollments
Revises: da0001_reports
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "da0002_enrollments"
down_revision = "da0001_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "docker_agent_enrollments",
        sa.Column("host", sa.String(length=253), primary_key=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("token_issued_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index(
        "ix_docker_agent_enrollments_token_hash",
        "docker_agent_enrollments",
        ["token_hash"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_docker_agent_enrollments_token_hash", table_name="docker_agent_enrollments")
    op.drop_table("docker_agent_enrollments")
