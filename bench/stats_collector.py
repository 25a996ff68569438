"""Stats history bench: the collector's CPU per 1,000 samples and the database bytes per
container per day.

1. Collector CPU: the real StatsCollector in this process, over a live state of
   ``--hosts`` hosts of ``--containers`` running containers each, whose source answers
   a stats sample at once (so what is measured is the collector's own work: scheduling,
   the per-host tasks, building rows and the one executemany per round, not the
   engine's sampling). Process CPU time over ``--rounds`` rounds, per 1,000 samples.
2. Storage: a day of raw samples at the default interval (30 s) for ``--day-containers``
   containers written through the collector's insert, then the real downsampling and
   retention at the end of that day; the growth of the database (SQLite: the file after
   a WAL checkpoint; PostgreSQL: pg_total_relation_size), per container. Also the
   steady state (24 h raw + 7 d of 5-minute rows + 90 d of hourly rows) from the measured
   bytes per row of each kind.

    .venv/bin/python bench/stats_collector.py [--database-url URL] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from aiohttp import web  # noqa: E402
from archnest import (  # noqa: E402
    DB_KEY,
    SETTINGS_KEY,
    Capabilities,
    ContainerSummary,
    Database,
    HostSource,
    Settings,
    Stats,
)
from archnest.live import LIVE_KEY, HostState  # noqa: E402
from archnest.stats_collector import StatsCollector  # noqa: E402
from archnest.stats_history import (  # noqa: E402
    apply_retention,
    container_stats,
    downsample,
    insert_samples,
    metadata,
    sample_row,
)

SAMPLE = Stats(
    cpu_percent=3.25,
    mem_usage_bytes=123_456_789,
    mem_limit_bytes=2**31,
    net_rx_bytes=987_654_321,
    net_tx_bytes=123_456_789,
    block_read_bytes=55_555_555,
    block_write_bytes=66_666_666,
    pids=12,
)


class InstantSource(HostSource):
    """Answers at once, with what an engine answers: the one-shot document (the path
    the collector takes for docker and ssh hosts), its CPU counters moving on."""

    name = "docker"
    capabilities = Capabilities(stats=True, events=True)

    def __init__(self) -> None:
        self.calls = 0

    async def stats(self, key: str, ref: str) -> Stats | None:
        return SAMPLE

    async def stats_sample(self, key: str, ref: str) -> dict[str, Any] | None:
        self.calls += 1
        n = self.calls
        return {
            "read": "2026-12-01T09:00:00.000000000Z",
            "pids_stats": {"current": 12},
            "cpu_stats": {
                "cpu_usage": {"total_usage": 10_000_000 * n},
                "system_cpu_usage": 2_000_000_000 * n,
                "online_cpus": 2,
            },
            "precpu_stats": {"cpu_usage": {"total_usage": 0}},
            "memory_stats": {
                "usage": 300_000_000,
                "limit": 2**31,
                "stats": {"inactive_file": 8_000_000},
            },
            "networks": {"eth0": {"rx_bytes": 987_654_321 + n, "tx_bytes": 123_456_789 + n}},
            "blkio_stats": {
                "io_service_bytes_recursive": [
                    {"major": 8, "minor": 0, "op": "read", "value": 55_555_555},
                    {"major": 8, "minor": 0, "op": "write", "value": 66_666_666},
                ]
            },
        }


async def _database(url: str) -> Database:
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(
            sa.text(
                "CREATE INDEX IF NOT EXISTS ix_container_stats_tier_t ON container_stats (tier, t)"
            )
        )
    return db


async def collector_cpu(db: Database, hosts: int, containers: int, rounds: int) -> dict:
    app = web.Application()
    app[DB_KEY] = db
    settings = Settings()
    app[SETTINGS_KEY] = settings
    source = InstantSource()
    live_hosts = {}
    for h in range(hosts):
        state = HostState(f"docker:{h}", source, str(h), live=True)
        for c in range(containers):
            cid = f"{h:08x}{c:056x}"
            state.containers[cid] = ContainerSummary(
                id=cid, name=f"c{h}-{c}", image="i", state="running"
            )
        live_hosts[state.host_id] = state
    app[LIVE_KEY] = SimpleNamespace(hosts=live_hosts)  # type: ignore[assignment]
    collector = StatsCollector(app, 30.0)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        await collector.round()
        await asyncio.gather(*collector.host_tasks.values())
    await collector.flush()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await collector.close()  # its leader connection, on PostgreSQL
    samples = hosts * containers * rounds
    return {
        "samples": samples,
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "cpu_ms_per_1000_samples": round(cpu / samples * 1e6, 1),
    }


async def _size(db: Database, path: Path | None) -> int:
    async with db.engine.connect() as conn:
        if path is not None:
            await conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
            return path.stat().st_size
        return int(
            (
                await conn.execute(sa.text("SELECT pg_total_relation_size('container_stats')"))
            ).scalar()
        )


async def _counts(db: Database) -> dict[int, int]:
    c = container_stats.c
    async with db.engine.connect() as conn:
        return dict((await conn.execute(sa.select(c.tier, sa.func.count()).group_by(c.tier))).all())


async def storage(db: Database, path: Path | None, containers: int) -> dict:
    async with db.engine.begin() as conn:
        await conn.execute(sa.delete(container_stats))
    empty = await _size(db, path)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=1)
    interval = 30
    for k in range(86400 // interval):  # one executemany per round, like the collector
        t = start + timedelta(seconds=k * interval + 3)
        await insert_samples(
            db.engine,
            [
                sample_row("docker:1", f"{c:064x}", f"container-{c}", t, SAMPLE)
                for c in range(containers)
            ],
        )
    await downsample(db.engine, end)
    await apply_retention(db.engine, end)
    day = await _size(db, path)
    counts = await _counts(db)
    per_container_day = (day - empty) / containers
    rows = sum(counts.values())
    per_row = (day - empty) / rows
    steady_rows = 2880 + 7 * 288 + 90 * 24
    return {
        "containers": containers,
        "rows_per_tier": counts,
        "bytes_per_container_per_day": round(per_container_day),
        "bytes_per_row": round(per_row, 1),
        "steady_state_rows_per_container": steady_rows,
        "steady_state_bytes_per_container": round(per_row * steady_rows),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--day-containers", type=int, default=50)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = None
        url = args.database_url
        if not url:
            path = Path(tmp) / "stats.db"
            url = f"sqlite+aiosqlite:///{path}"
        db = await _database(url)
        try:
            result = {
                "database": db.engine.dialect.name,
                "collector": await collector_cpu(db, args.hosts, args.containers, args.rounds),
                "storage": await storage(db, path, args.day_containers),
            }
        finally:
            await db.dispose()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
