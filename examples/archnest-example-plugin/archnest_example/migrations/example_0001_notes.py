"""example: container notes

Revision ID: example_0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "example_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "example_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("host_id", sa.String(240), nullable=False),
        sa.Column("container", sa.String(128), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_example_notes_host_id", "example_notes", ["host_id"])
    op.create_index("ix_example_notes_container", "example_notes", ["container"])


def downgrade() -> None:
    op.drop_table("example_notes")
