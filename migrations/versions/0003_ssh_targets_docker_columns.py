"""core: docker_ssh's columns leave ssh_targets

Revision ID: core_0003
Revises: core_0002
Create Date: 2027-01-18

``docker`` and ``sudo`` of ``ssh_targets`` belong to the docker_ssh plugin, which now
keeps them in its own table (``docker_ssh_targets``, its own lineage). The two lineages
have separate version tables and run core first, so this revision cannot wait for
docker_ssh's copy: docker_ssh may be installed later, or never. Instead the values are
handed over in a table of their own before the columns go:

- ``ssh_targets_docker_handoff`` gets every target whose flags are not both false;
- docker_ssh's first revision copies from it and drops it (whenever it runs: the same
  upgrade, a later one after installing the plugin, or never, leaving only this small
  table behind). Nothing is lost in any order, and the core drops its columns now.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0003"
down_revision = "core_0002"
branch_labels = None
depends_on = None

HANDOFF = "ssh_targets_docker_handoff"


def upgrade() -> None:
    op.create_table(
        HANDOFF,
        sa.Column("target_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("docker", sa.Boolean(), nullable=False),
        sa.Column("sudo", sa.Boolean(), nullable=False),
    )
    op.execute(
        "INSERT INTO ssh_targets_docker_handoff (target_id, docker, sudo) "
        "SELECT id, docker, sudo FROM ssh_targets WHERE docker OR sudo"
    )
    with op.batch_alter_table("ssh_targets") as batch:
        batch.drop_column("docker")
        batch.drop_column("sudo")


def downgrade() -> None:
    with op.batch_alter_table("ssh_targets") as batch:
        batch.add_column(
            sa.Column("docker", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("sudo", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Only what docker_ssh has not taken over yet comes back (its table stays its own).
    if HANDOFF in sa.inspect(op.get_bind()).get_table_names():
        op.execute(
            "UPDATE ssh_targets SET docker = h.docker, sudo = h.sudo FROM ssh_targets_docker_handoff AS h "
            "WHERE h.target_id = ssh_targets.id"
        )
        op.drop_table(HANDOFF)
