"""core: users can be disabled and show their last sign-in; API tokens can expire

Revision ID: core_0004
Revises: core_0003
Create Date: 2026-12-01

Plain ``ADD COLUMN`` / ``DROP COLUMN`` on both databases, never ``batch_alter_table``:
on SQLite a batch rebuilds ``users`` (copy, drop, rename), and dropping ``users`` with
foreign keys on deletes every API token and web session through their ``ON DELETE
CASCADE``. SQLite adds a NOT NULL column with a constant default in place, and drops
one in place since 3.35.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0004"
down_revision = "core_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("users", sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def _drop(table: str, column: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Alembic would rebuild the table for this (see above); SQLite can do it itself.
        op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    else:
        op.drop_column(table, column)


def downgrade() -> None:
    _drop("api_tokens", "expires_at")
    _drop("users", "last_login_at")
    _drop("users", "disabled")
