"""docker_agent: a host's containers in their own table, the stats samples apart

Revision ID: da0003_containers_apart
Revises: da0002_enrollments
Create Date: 2026-12-01

A report's row changes with every report (times, counts, stats samples); its containers
rarely do. Kept in one row, every report rewrote the whole containers JSON. The stored
containers carried each one's stats sample; the samples now live in the report's row
(``stats_json``, by container id) and the containers without them in
``docker_agent_containers``. Existing rows are split on upgrade and joined on downgrade.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "da0003_containers_apart"
down_revision = "da0002_enrollments"
branch_labels = None
depends_on = None

_REPORTS = sa.table(
    "docker_agent_reports",
    sa.column("host", sa.String),
    sa.column("containers_json", sa.Text),
    sa.column("stats_json", sa.Text),
)
_CONTAINERS = sa.table(
    "docker_agent_containers",
    sa.column("host", sa.String),
    sa.column("containers_json", sa.Text),
)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def upgrade() -> None:
    op.create_table(
        "docker_agent_containers",
        sa.Column("host", sa.String(length=253), primary_key=True),
        sa.Column("containers_json", sa.Text(), nullable=False),
    )
    with op.batch_alter_table("docker_agent_reports") as batch:
        batch.add_column(sa.Column("stats_json", sa.Text(), nullable=False, server_default="{}"))
    conn = op.get_bind()
    rows = conn.execute(sa.select(_REPORTS.c.host, _REPORTS.c.containers_json)).all()
    for host, containers_json in rows:
        containers = json.loads(containers_json)
        stats = {}
        for c in containers:
            sample = c.pop("stats", None)
            if sample is not None:
                stats[c["id"]] = sample
        conn.execute(_CONTAINERS.insert().values(host=host, containers_json=_compact(containers)))
        conn.execute(
            _REPORTS.update().where(_REPORTS.c.host == host).values(stats_json=_compact(stats))
        )
    with op.batch_alter_table("docker_agent_reports") as batch:
        batch.drop_column("containers_json")
        # The default only filled the existing rows; the app always writes the column.
        batch.alter_column("stats_json", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("docker_agent_reports") as batch:
        batch.add_column(
            sa.Column("containers_json", sa.Text(), nullable=False, server_default="[]")
        )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_REPORTS.c.host, _REPORTS.c.stats_json, _CONTAINERS.c.containers_json).join(
            _CONTAINERS, _CONTAINERS.c.host == _REPORTS.c.host
        )
    ).all()
    for host, stats_json, containers_json in rows:
        stats = json.loads(stats_json)
        containers = json.loads(containers_json)
        for c in containers:
            c["stats"] = stats.get(c["id"])
        conn.execute(
            _REPORTS.update()
            .where(_REPORTS.c.host == host)
            .values(containers_json=_compact(containers))
        )
    with op.batch_alter_table("docker_agent_reports") as batch:
        batch.drop_column("stats_json")
        batch.alter_column("containers_json", server_default=None)
    op.drop_table("docker_agent_containers")
