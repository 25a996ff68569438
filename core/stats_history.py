"""Stats history storage: the ``container_stats`` table, its tiers, downsampling,
retention and the history query.

Tiers (one table, column ``tier``):

====  ==================  ===========  ==========================
tier  what                kept for     serves the range
====  ==================  ===========  ==========================
0     raw samples         24 hours     1h, 24h
1     5-minute buckets    7 days       7d
2     hourly buckets      90 days      30d
====  ==================  ===========  ==========================

A bucket's row is stamped with the bucket's start. Gauges (CPU %, memory, pids) are
averaged over the bucket; the network and block I/O counters are cumulative, so a
bucket keeps their largest (last) value, and the memory limit its largest.

Downsampling is idempotent by bucket: a bucket's row is written with an upsert on the
unique key (host_id, container_id, tier, t), so running the job twice, or on several
replicas at once, writes the same values again and never double-aggregates. It works
the same on SQLite and PostgreSQL (the grouping is done in Python, so no dialect's date
functions are involved).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .containers import Stats

metadata = sa.MetaData()

container_stats = sa.Table(
    "container_stats",
    metadata,
    sa.Column("host_id", sa.String(160), nullable=False),
    sa.Column("container_id", sa.String(128), nullable=False),
    sa.Column("name", sa.String(256), nullable=False, server_default=""),
    sa.Column("tier", sa.SmallInteger(), nullable=False),
    sa.Column("t", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cpu_percent", sa.Float(), nullable=True),
    sa.Column("mem_usage_bytes", sa.BigInteger(), nullable=True),
    sa.Column("mem_limit_bytes", sa.BigInteger(), nullable=True),
    sa.Column("net_rx_bytes", sa.BigInteger(), nullable=True),
    sa.Column("net_tx_bytes", sa.BigInteger(), nullable=True),
    sa.Column("block_read_bytes", sa.BigInteger(), nullable=True),
    sa.Column("block_write_bytes", sa.BigInteger(), nullable=True),
    sa.Column("pids", sa.Integer(), nullable=True),
    sa.UniqueConstraint("host_id", "container_id", "tier", "t", name="uq_container_stats_key"),
)
KEY = ("host_id", "container_id", "tier", "t")
GAUGES = ("cpu_percent", "mem_usage_bytes", "pids")
MAXED = ("mem_limit_bytes", "net_rx_bytes", "net_tx_bytes", "block_read_bytes", "block_write_bytes")
VALUES = (*GAUGES, *MAXED)
POINT_FIELDS = (
    "cpu_percent",
    "mem_usage_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
    "block_read_bytes",
    "block_write_bytes",
)


@dataclass(frozen=True)
class Tier:
    number: int
    bucket_seconds: int  # 0: raw
    keep: timedelta


RAW = Tier(0, 0, timedelta(hours=24))
FIVE_MINUTES = Tier(1, 300, timedelta(days=7))
HOURLY = Tier(2, 3600, timedelta(days=90))
TIERS = (RAW, FIVE_MINUTES, HOURLY)
# range -> (tier read, span)
RANGES: dict[str, tuple[Tier, timedelta]] = {
    "1h": (RAW, timedelta(hours=1)),
    "24h": (RAW, timedelta(hours=24)),
    "7d": (FIVE_MINUTES, timedelta(days=7)),
    "30d": (HOURLY, timedelta(days=30)),
}
MAX_POINTS = 1000


def _utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sample_row(host_id: str, container_id: str, name: str, t: datetime, s: Stats) -> dict:
    """One raw row of the table."""
    return {
        "host_id": host_id,
        "container_id": container_id,
        "name": name[:256],
        "tier": RAW.number,
        "t": t,
        **{f: getattr(s, f) for f in VALUES},
    }


def _insert(engine: AsyncEngine) -> Any:
    return (sqlite if engine.dialect.name == "sqlite" else postgresql).insert(container_stats)


async def insert_samples(engine: AsyncEngine, rows: Sequence[dict]) -> None:
    """Raw samples, one executemany; a repeated (container, t) is ignored."""
    if not rows:
        return
    stmt = _insert(engine).on_conflict_do_nothing(index_elements=list(KEY))
    async with engine.begin() as conn:
        await conn.execute(stmt, list(rows))


def _mean(values: list[Any], as_int: bool) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    mean = sum(present) / len(present)
    return round(mean) if as_int else round(mean, 3)


def aggregate(rows: Iterable[Mapping[str, Any]], tier: Tier) -> list[dict]:
    """Bucket rows (mappings, ordered by host, container, t) into ``tier``'s rows."""
    groups: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        epoch = int(_utc(r["t"]).timestamp())
        groups.setdefault(
            (r["host_id"], r["container_id"], epoch - epoch % tier.bucket_seconds), []
        ).append(r)
    out = []
    for (host_id, cid, start), members in groups.items():
        row: dict[str, Any] = {
            "host_id": host_id,
            "container_id": cid,
            "name": members[-1]["name"],
            "tier": tier.number,
            "t": datetime.fromtimestamp(start, UTC),
        }
        for f in GAUGES:
            row[f] = _mean([m[f] for m in members], as_int=f != "cpu_percent")
        for f in MAXED:
            present = [m[f] for m in members if m[f] is not None]
            row[f] = max(present) if present else None
        out.append(row)
    return out


async def _downsample_tier(
    conn: AsyncConnection, engine: AsyncEngine, source: Tier, target: Tier, now: datetime
) -> int:
    """Aggregate ``source`` rows of the complete buckets of ``target`` not yet written
    (the latest written one again: harmless, it is an upsert)."""
    c = container_stats.c
    latest = (
        await conn.execute(sa.select(sa.func.max(c.t)).where(c.tier == target.number))
    ).scalar()
    size = target.bucket_seconds
    start = _utc(latest) if latest is not None else now - source.keep
    end_epoch = int(now.timestamp()) // size * size  # complete buckets only
    end = datetime.fromtimestamp(end_epoch, UTC)
    if start >= end:
        return 0
    cols = [c.host_id, c.container_id, c.name, c.t, *(getattr(c, f) for f in VALUES)]
    result = await conn.execute(
        sa.select(*cols)
        .where(c.tier == source.number, c.t >= start, c.t < end)
        .order_by(c.host_id, c.container_id, c.t)
    )
    rows = aggregate(result.mappings(), target)
    if not rows:
        return 0
    stmt = _insert(engine)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(KEY),
        set_={f: getattr(stmt.excluded, f) for f in ("name", *VALUES)},
    )
    for at in range(0, len(rows), 5000):
        await conn.execute(stmt, rows[at : at + 5000])
    return len(rows)


async def downsample(engine: AsyncEngine, now: datetime | None = None) -> dict[int, int]:
    """Raw -> 5-minute -> hourly for every complete bucket; rows written per tier."""
    now = now or datetime.now(UTC)
    written = {}
    async with engine.begin() as conn:
        written[1] = await _downsample_tier(conn, engine, RAW, FIVE_MINUTES, now)
        written[2] = await _downsample_tier(conn, engine, FIVE_MINUTES, HOURLY, now)
    return written


async def apply_retention(engine: AsyncEngine, now: datetime | None = None) -> int:
    """Remove each tier's rows older than it is kept; rows removed."""
    now = now or datetime.now(UTC)
    c = container_stats.c
    gone = 0
    async with engine.begin() as conn:
        for tier in TIERS:
            result = await conn.execute(
                sa.delete(container_stats).where(c.tier == tier.number, c.t < now - tier.keep)
            )
            gone += int(result.rowcount or 0)
    return gone


def _iso(t: datetime) -> str:
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


async def history(
    engine: AsyncEngine, host_id: str, container_id: str, range_: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The points of ``range_`` (a key of :data:`RANGES`), oldest first, at most
    :data:`MAX_POINTS` (thinned evenly when the tier holds more)."""
    tier, span = RANGES[range_]
    now = now or datetime.now(UTC)
    c = container_stats.c
    async with engine.connect() as conn:
        result = await conn.execute(
            sa.select(c.t, *(getattr(c, f) for f in POINT_FIELDS))
            .where(
                c.host_id == host_id,
                c.container_id == container_id,
                c.tier == tier.number,
                c.t >= now - span,
            )
            .order_by(c.t)
        )
        rows = result.all()
    step = max(1, math.ceil(len(rows) / MAX_POINTS))
    return [{"t": _iso(r[0]), **dict(zip(POINT_FIELDS, r[1:], strict=True))} for r in rows[::step]]


async def latest_id_of(engine: AsyncEngine, table: sa.Table, host_id: str, ref: str) -> str | None:
    """The id of the container with this name or id (prefix) among ``table``'s rows (it
    has host_id, container_id, name and t), the latest first: what is stored of a
    container outlives it."""
    c = table.c
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(c.container_id)
                .where(
                    c.host_id == host_id,
                    sa.or_(c.name == ref, c.container_id.startswith(ref, autoescape=True)),
                )
                .order_by(c.t.desc())
                .limit(1)
            )
        ).first()
    return row[0] if row else None


async def known_ids(engine: AsyncEngine, host_id: str, ref: str) -> str | None:
    """The container ``ref`` in the stored stats history."""
    return await latest_id_of(engine, container_stats, host_id, ref)


__all__ = [
    "RANGES",
    "TIERS",
    "aggregate",
    "apply_retention",
    "container_stats",
    "downsample",
    "history",
    "insert_samples",
    "known_ids",
    "latest_id_of",
    "sample_row",
]
