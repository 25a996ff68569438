"""docker_tcp: engines and flags

Revision ID: docker_tcp_0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "docker_tcp_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "docker_tcp_engines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("tls_verify", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("tls_ca", sa.Text(), nullable=True),
        sa.Column("tls_cert_enc", sa.Text(), nullable=True),
        sa.Column("tls_key_enc", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_docker_tcp_engines_name", "docker_tcp_engines", ["name"], unique=True)
    op.create_table(
        "docker_tcp_flags",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("value", sa.String(length=255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("docker_tcp_flags")
    op.drop_index("ix_docker_tcp_engines_name", table_name="docker_tcp_engines")
    op.drop_table("docker_tcp_engines")
