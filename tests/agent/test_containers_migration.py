"""da0003: a host's stored containers move to their own table, the stats samples to
the report's row, and back on downgrade, with nothing lost either way."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command
from archnest.db import Database
from archnest.migrate import alembic_config
from archnest_docker_agent.plugin import archnest_migrations


@pytest.fixture
def archnest_database_url(archnest_empty_database_url: str) -> str:
    """The old schema is built here revision by revision: the database starts empty."""
    return archnest_empty_database_url


def _migrate(connection, how: str, revision: str) -> None:  # type: ignore[no-untyped-def]
    cfg = alembic_config(archnest_migrations())
    cfg.attributes["connection"] = connection
    getattr(command, how)(cfg, revision)


CONTAINERS = [
    {"id": "a" * 64, "name": "web", "state": "running", "stats": {"cpu_percent": 1.5}},
    {"id": "b" * 64, "name": "db", "state": "exited", "stats": None},
]


async def test_stored_containers_are_split_and_joined_again(archnest_database_url: str) -> None:
    db = Database(archnest_database_url)
    row = {
        "host": "old-host",
        "agent_version": "1",
        "schema_version": 1,
        "reported_at": datetime(2026, 11, 30, 10, 0, 0),
        "received_at": datetime(2026, 11, 30, 10, 0, 1),
        "container_count": 2,
        "running_count": 1,
        "report_count": 7,
        "payload_bytes": 1234,
        "engine_json": "{}",
        "host_facts_json": "{}",
        "containers_json": json.dumps(CONTAINERS),
    }
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "da0002_enrollments")
            cols = ", ".join(row)
            await conn.execute(
                sa.text(
                    f"INSERT INTO docker_agent_reports ({cols}) VALUES "
                    f"({', '.join(':' + k for k in row)})"
                ),
                row,
            )
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "upgrade", "head")
        async with db.engine.connect() as conn:
            report = (
                (await conn.execute(sa.text("SELECT * FROM docker_agent_reports"))).mappings().one()
            )
            stored = (
                await conn.execute(
                    sa.text("SELECT host, containers_json FROM docker_agent_containers")
                )
            ).all()
        assert "containers_json" not in report
        assert report["report_count"] == 7
        assert json.loads(report["stats_json"]) == {"a" * 64: {"cpu_percent": 1.5}}
        assert [h for h, _ in stored] == ["old-host"]
        assert json.loads(stored[0][1]) == [
            {k: v for k, v in c.items() if k != "stats"} for c in CONTAINERS
        ]

        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "downgrade", "da0002_enrollments")
        async with db.engine.connect() as conn:
            back = (
                (await conn.execute(sa.text("SELECT * FROM docker_agent_reports"))).mappings().one()
            )
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert "docker_agent_containers" not in tables and "stats_json" not in back
        assert json.loads(back["containers_json"]) == CONTAINERS
        assert back["report_count"] == 7
    finally:
        await db.dispose()
