"""The report writer: SQLite's own connection (one hand-over per batch) and the
SQLAlchemy path on PostgreSQL store rows that read back alike, and lose nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient
from archnest import DB_KEY
from archnest_docker_agent.source import STORE_KEY
from sqlalchemy import text

from .conftest import post_report
from .payloads import make_report

HOST = "store-host"


async def test_rows_read_back_through_sqlalchemy(archnest_client: TestClient) -> None:
    store = archnest_client.app[STORE_KEY]
    engine = archnest_client.app[DB_KEY].engine
    # The writer of each database: its own SQLite connection on a file, else SQLAlchemy.
    assert (store._sqlite is not None) == (engine.dialect.name == "sqlite")
    report = make_report(HOST, 5)
    report["reported_at"] = "2026-11-30T23:59:58.250000+01:00"
    before = datetime.now(UTC).replace(tzinfo=None)
    assert (await post_report(archnest_client, report)).status == 204
    row = await store.host(HOST)
    assert row is not None
    # DATETIME columns come back as naive UTC datetimes, as SQLAlchemy wrote them.
    assert row.reported_at == datetime(2026, 11, 30, 22, 59, 58, 250000)
    assert isinstance(row.received_at, datetime) and row.received_at >= before
    assert (row.container_count, row.running_count, row.report_count) == (5, 4, 1)
    full = await store.report(HOST)
    assert full is not None and len(json.loads(full["containers_json"])) == 5
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT received_at FROM docker_agent_reports WHERE host = :h"), {"h": HOST}
            )
        ).scalar()
    assert stored is not None


async def test_a_burst_from_many_hosts_is_all_counted(archnest_client: TestClient) -> None:
    store = archnest_client.app[STORE_KEY]
    bodies = [json.dumps(make_report(f"burst-{i}", 10)).encode() for i in range(12)]
    statuses = await asyncio.gather(
        *(post_report(archnest_client, bodies[i % 12]) for i in range(96))
    )
    assert [r.status for r in statuses] == [204] * 96
    rows = await store.hosts()
    assert len(rows) == 12 and sum(r.report_count for r in rows) == 96
    # Reports that arrived together went into fewer commits than reports.
    assert store.reports_written >= 96 and store.batches <= store.reports_written


async def test_a_failed_batch_fails_its_senders_and_the_next_one_works(
    archnest_client: TestClient,
) -> None:
    store = archnest_client.app[STORE_KEY]
    engine = archnest_client.app[DB_KEY].engine
    assert (await post_report(archnest_client, make_report(HOST, 2))).status == 204
    # The table renamed away: the next batch fails, and its sender gets an error, not 204.
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE docker_agent_reports RENAME TO agent_reports_away"))
    try:
        resp = await post_report(archnest_client, make_report(HOST, 3))
        assert resp.status == 500
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("ALTER TABLE agent_reports_away RENAME TO docker_agent_reports")
            )
    assert (await post_report(archnest_client, make_report(HOST, 4))).status == 204
    row = await store.host(HOST)
    assert row is not None and row.container_count == 4 and row.report_count == 2
