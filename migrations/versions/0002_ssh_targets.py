"""core: SSH targets (the core SSH transport)

Revision ID: core_0002
Revises: core_0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ssh_targets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("auth", sa.String(16), nullable=False),
        # Credentials are Fernet tokens (SecretBox), never plaintext.
        sa.Column("private_key_enc", sa.Text(), nullable=True),
        sa.Column("passphrase_enc", sa.Text(), nullable=True),
        sa.Column("password_enc", sa.Text(), nullable=True),
        sa.Column("certificate_enc", sa.Text(), nullable=True),
        sa.Column("jump", sa.JSON(), nullable=False),
        sa.Column("host_keys", sa.JSON(), nullable=False),
        sa.Column("docker", sa.Boolean(), nullable=False),
        sa.Column("sudo", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ssh_targets_name", "ssh_targets", ["name"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_ssh_targets_name", table_name="ssh_targets")
    op.drop_table("ssh_targets")
