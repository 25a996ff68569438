"""docker_ssh: its own table of per-target settings, taken over from the core

Revision ID: docker_ssh_0001
Revises:
Create Date: 2027-01-18

Until now ``docker`` and ``sudo`` were columns of the core's ``ssh_targets``. The core's
revision core_0003 hands the values over in ``ssh_targets_docker_handoff`` and drops
its columns; the core lineage always runs first, so this revision normally finds the
hand-off table, copies it and drops it. That works the same whether docker_ssh is
upgraded together with the core or installed months later. Should it ever run before
core_0003 (lineages applied one by one with the ``alembic`` command), it copies from
the columns themselves instead, and the hand-off table core_0003 then leaves is unused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "docker_ssh_0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE = "docker_ssh_targets"
HANDOFF = "ssh_targets_docker_handoff"


def upgrade() -> None:
    op.create_table(
        TABLE,
        # The row goes with its target, also while this plugin is not loaded: SQLite may
        # hand a deleted target's id to the next one, which must not inherit the flags.
        sa.Column(
            "target_id",
            sa.Integer(),
            sa.ForeignKey("ssh_targets.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("docker", sa.Boolean(), nullable=False),
        sa.Column("sudo", sa.Boolean(), nullable=False),
    )
    inspector = sa.inspect(op.get_bind())
    if HANDOFF in inspector.get_table_names():
        # Targets deleted since the hand-off are left behind.
        op.execute(
            "INSERT INTO docker_ssh_targets (target_id, docker, sudo) "
            "SELECT h.target_id, h.docker, h.sudo FROM ssh_targets_docker_handoff AS h "
            "JOIN ssh_targets AS t ON t.id = h.target_id"
        )
        op.drop_table(HANDOFF)
    elif "docker" in {c["name"] for c in inspector.get_columns("ssh_targets")}:
        op.execute(
            "INSERT INTO docker_ssh_targets (target_id, docker, sudo) "
            "SELECT id, docker, sudo FROM ssh_targets WHERE docker OR sudo"
        )


def downgrade() -> None:
    op.drop_table(TABLE)
