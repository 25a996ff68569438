"""The report writer: SQLite's own connection (one hand-over per batch) and the
SQLAlchemy path on PostgreSQL store rows that read back alike, and lose nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient
from archnest import DB_KEY
from archnest_docker_agent.normalise import ContainerCache, with_stats
from archnest_docker_agent.routes import report_row
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


def _report(containers: int, second: int) -> bytes:
    report = make_report(HOST, containers)
    report["reported_at"] = f"2026-12-01T10:00:{second:02d}Z"
    for n, sample in enumerate(report["stats"].values()):
        sample["cpu_percent"] = float(second * 10 + n)
    return json.dumps(report).encode()


async def _stored(store, host: str = HOST) -> list[dict]:  # type: ignore[no-untyped-def]
    full = await store.report(host)
    assert full is not None
    return with_stats(full["containers_json"], full["stats_json"])


async def test_a_report_that_changed_no_container_updates_its_stats(
    archnest_client: TestClient,
) -> None:
    store = archnest_client.app[STORE_KEY]
    cache = ContainerCache()
    row1, _ = report_row(_report(3, 1), cache)
    row2, _ = report_row(_report(3, 2), cache)
    assert row1["containers_changed"] and not row2["containers_changed"]
    assert row2["containers_json"] is row1["containers_json"]
    await store.save(row1)
    await store.save(row2)
    stored = await _stored(store)
    assert [c["id"] for c in stored] == [c["Id"] for c in make_report(HOST, 3)["containers"]]
    running = [c for c in stored if c["stats"] is not None]
    assert running and all(c["stats"]["cpu_percent"] >= 20 for c in running)
    assert (await store.host(HOST)).report_count == 2  # type: ignore[union-attr]


async def test_containers_of_a_failed_batch_are_stored_by_the_next_unchanged_report(
    archnest_client: TestClient,
) -> None:
    store = archnest_client.app[STORE_KEY]
    engine = archnest_client.app[DB_KEY].engine
    cache = ContainerCache()
    await store.save(report_row(_report(2, 1), cache)[0])
    grown, _ = report_row(_report(3, 2), cache)  # a container was added...
    again, _ = report_row(_report(3, 3), cache)  # ...and the next report changed nothing
    assert grown["containers_changed"] and not again["containers_changed"]
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE docker_agent_containers RENAME TO away"))
    try:
        with pytest.raises(Exception, match="docker_agent_containers"):
            await store.save(grown)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE away RENAME TO docker_agent_containers"))
    await store.save(again)
    assert len(await _stored(store)) == 3


async def test_an_unchanged_report_of_a_forgotten_host_stores_its_containers(
    archnest_client: TestClient,
) -> None:
    store = archnest_client.app[STORE_KEY]
    cache = ContainerCache()
    await store.save(report_row(_report(2, 1), cache)[0])
    late, _ = report_row(_report(2, 2), cache)  # in flight while the host is forgotten
    assert not late["containers_changed"]
    assert await store.forget(HOST)
    await store.save(late)
    assert len(await _stored(store)) == 2
