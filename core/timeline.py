"""Container timelines: each container's state changes (start, die with its exit code,
restart, OOM kill, health changes), kept in the ``container_events`` table.

Where the entries come from:

- hosts with an event stream (docker, ssh): the live state's watcher hands every
  ``start``, ``die``, ``restart``, ``oom`` and ``health_status`` event to
  :meth:`Timeline.record_engine_event`, with the engine's own time (nanoseconds);
- hosts without one (agents): the difference between two consecutive reports
  (:meth:`Timeline.record_report_changes`): a container that runs now and did not ->
  ``start``; one that ran and has exited -> ``die`` with the code of its status
  ("Exited (3)"); one that is restarting now -> ``restart``; a health that changed ->
  ``health``. A report does not say that an OOM kill happened, nor restarts between two
  reports: an agent host's timeline is as fine as its reporting interval.

Several replicas watch the same hosts and record the same engine events: the engine's
time is part of the row's key, so the second insert of an event is ignored.

Writes are batched (one executemany per burst, off the event path) and flushed when the
app stops; entries are kept ``ARCHNEST_TIMELINE_RETENTION_DAYS`` (daily job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from .daily import daily
from .keys import DB_KEY, SETTINGS_KEY
from .stats_history import latest_id_of

log = logging.getLogger("archnest.timeline")

EVENTS: tuple[str, ...] = ("start", "die", "restart", "oom", "health")
# Docker's event actions that are timeline entries (health_status carries ": <health>").
_ACTIONS = {"start": "start", "die": "die", "restart": "restart", "oom": "oom"}
_EXITED = re.compile(r"^Exited \((-?\d+)\)")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
# Pending entries beyond this are dropped (logged): a database that does not answer
# must not grow the app's memory without bound.
MAX_PENDING = 10_000

metadata = sa.MetaData()

container_events = sa.Table(
    "container_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("host_id", sa.String(160), nullable=False),
    sa.Column("container_id", sa.String(128), nullable=False),
    sa.Column("name", sa.String(256), nullable=False, server_default=""),
    sa.Column("t", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("health", sa.String(32), nullable=True),
    sa.UniqueConstraint("host_id", "container_id", "t", "event", name="uq_container_events_key"),
    sa.Index("ix_container_events_t", "t"),
)
KEY = ("host_id", "container_id", "t", "event")


class TimelineEntry(BaseModel):
    """One state change. ``exit_code`` for ``die``, ``health`` for ``health``."""

    t: str
    event: Literal["start", "die", "restart", "oom", "health"]
    exit_code: int | None = None
    health: str | None = None


def _iso(t: datetime) -> str:
    if t.tzinfo is None:  # SQLite hands back naive datetimes: they were stored as UTC
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _engine_time(event: Mapping[str, Any]) -> datetime:
    nano = event.get("timeNano")
    if isinstance(nano, int) and nano > 0:
        return datetime.fromtimestamp(nano // 1000 / 1_000_000, UTC)
    seconds = event.get("time")
    if isinstance(seconds, int | float) and seconds > 0:
        return datetime.fromtimestamp(seconds, UTC)
    return datetime.now(UTC)


def entry_from_engine_event(host_id: str, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The timeline row of a Docker container event (Engine API or ``docker events``
    JSON), or None when the event is not a timeline entry."""
    if str(event.get("Type") or "container") != "container":
        return None
    action = str(event.get("Action") or event.get("status") or "")
    word, _, rest = action.partition(":")
    word = word.strip()
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    cid = str(actor.get("ID") or event.get("id") or "")
    if not cid:
        return None
    row: dict[str, Any] = {
        "host_id": host_id,
        "container_id": cid[:128],
        "name": str(attrs.get("name") or "")[:256],
        "t": _engine_time(event),
        "exit_code": None,
        "health": None,
    }
    if word == "health_status":
        health = rest.strip()
        if not health:
            return None
        return {**row, "event": "health", "health": health[:32]}
    kind = _ACTIONS.get(word)
    if kind is None:
        return None
    if kind == "die":
        code = attrs.get("exitCode")
        with contextlib.suppress(TypeError, ValueError):
            row["exit_code"] = int(code) if code is not None else None
    return {**row, "event": kind}


def exit_code_of(status: str) -> int | None:
    """The code in Docker's "Exited (3)" status phrase."""
    m = _EXITED.match(status)
    return int(m.group(1)) if m else None


def _health(status: str) -> str | None:
    for word in ("unhealthy", "healthy", "health: starting"):
        if f"({word})" in status:
            return "starting" if word == "health: starting" else word
    return None


# (state, name, status) of a container in a report.
Seen = tuple[str, str, str]


def entries_from_reports(
    host_id: str, before: Mapping[str, Seen] | None, now: Mapping[str, Seen], t: datetime
) -> list[dict[str, Any]]:
    """Timeline rows for what changed between two reports of a host (``before`` None:
    the first report this process saw, which says nothing about changes)."""
    if before is None:
        return []
    out = []
    for cid, seen in now.items():
        old = before.get(cid)
        if old == seen:
            continue
        state, name, status = seen
        old_state, old_health = (old[0], _health(old[2])) if old else ("", None)
        row = {"host_id": host_id, "container_id": cid[:128], "name": name[:256], "t": t}
        if state == "running" and old_state != "running":
            out.append({**row, "event": "start", "exit_code": None, "health": None})
        elif state in ("exited", "dead") and old_state in ("running", "restarting", "paused"):
            code = exit_code_of(status)
            out.append({**row, "event": "die", "exit_code": code, "health": None})
        elif state == "restarting" and old_state != "restarting":
            out.append({**row, "event": "restart", "exit_code": None, "health": None})
        health = _health(status)
        if health is not None and health != old_health and old is not None:
            out.append({**row, "event": "health", "exit_code": None, "health": health})
    return out


def _insert(engine: AsyncEngine) -> Any:
    dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
    return dialect.insert(container_events).on_conflict_do_nothing(index_elements=list(KEY))


async def insert_entries(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """Rows, one executemany; an entry already there (another replica's) is ignored."""
    if rows:
        async with engine.begin() as conn:
            await conn.execute(_insert(engine), rows)


class Timeline:
    """Takes entries as they happen and writes them in batches."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.pending: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.dropped = 0

    def _add(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        room = MAX_PENDING - len(self.pending)
        if room < len(rows):
            self.dropped += len(rows) - max(room, 0)
            log.warning("timeline: database behind, %d entries dropped", self.dropped)
            rows = rows[: max(room, 0)]
        self.pending.extend(rows)
        self._wake.set()

    def record_engine_event(self, host_id: str, event: Mapping[str, Any]) -> None:
        row = entry_from_engine_event(host_id, event)
        if row is not None:
            self._add([row])

    def record_report_changes(
        self, host_id: str, before: Mapping[str, Seen] | None, now: Mapping[str, Seen]
    ) -> None:
        self._add(entries_from_reports(host_id, before, now, datetime.now(UTC)))

    def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="archnest-timeline")

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.05)  # a burst (a compose stack restarting) in one write
            await self.flush()

    async def flush(self) -> None:
        rows, self.pending = self.pending, []
        if not rows:
            return
        try:
            await insert_entries(self.app[DB_KEY].engine, rows)
        except Exception as exc:
            # Kept for the next write (bounded by MAX_PENDING): an outage loses nothing
            # that fits.
            log.warning("timeline: could not write %d entries: %r", len(rows), exc)
            self.pending[:0] = rows[: max(0, MAX_PENDING - len(self.pending))]
            await asyncio.sleep(1.0)
            self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5.0)


TIMELINE_KEY = web.AppKey("archnest.timeline", Timeline)


async def timeline_ctx(app: web.Application) -> AsyncIterator[None]:
    """For ``app.cleanup_ctx``, before the live state (which records into it) and
    closed after it. Also runs the daily retention."""
    timeline = app[TIMELINE_KEY] = Timeline(app)
    timeline.start()
    days = app[SETTINGS_KEY].timeline_retention_days
    try:
        if days > 0:
            async with daily(
                f"timeline retention ({days} days)",
                lambda: apply_retention(app[DB_KEY].engine, days),
            ):
                yield
        else:
            yield
    finally:
        await timeline.close()


async def apply_retention(engine: AsyncEngine, days: int) -> int:
    cutoff = datetime.now(UTC) - timedelta(days=days)
    async with engine.begin() as conn:
        result = await conn.execute(
            sa.delete(container_events).where(container_events.c.t < cutoff)
        )
    return result.rowcount or 0


async def entries(
    engine: AsyncEngine, host_id: str, container_id: str, limit: int = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """A container's timeline, newest first."""
    c = container_events.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(c.t, c.event, c.exit_code, c.health)
                .where(c.host_id == host_id, c.container_id == container_id)
                .order_by(c.t.desc(), c.id.desc())
                .limit(limit)
            )
        ).all()
    return [
        {"t": _iso(t), "event": event, "exit_code": code, "health": health}
        for t, event, code, health in rows
    ]


async def events_since(
    app: web.Application, since: datetime, kinds: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Every container's entries at or after ``since`` (oldest first), optionally of
    some kinds only: dicts of host_id, container_id, name, t (aware UTC), event,
    exit_code, health. For rules that count happenings (restart loops, OOM kills)."""
    c = container_events.c
    query = sa.select(c.host_id, c.container_id, c.name, c.t, c.event, c.exit_code, c.health).where(
        c.t >= since
    )
    if kinds is not None:
        query = query.where(c.event.in_(list(kinds)))
    async with app[DB_KEY].engine.connect() as conn:
        rows = (await conn.execute(query.order_by(c.t, c.id))).all()
    out = []
    for r in rows:
        row = dict(r._mapping)
        if row["t"].tzinfo is None:
            row["t"] = row["t"].replace(tzinfo=UTC)
        out.append(row)
    return out


async def known_ids(engine: AsyncEngine, host_id: str, ref: str) -> str | None:
    """The container ``ref`` in the stored timeline (it outlives the container)."""
    return await latest_id_of(engine, container_events, host_id, ref)


__all__ = [
    "EVENTS",
    "TIMELINE_KEY",
    "Timeline",
    "TimelineEntry",
    "apply_retention",
    "container_events",
    "entries",
    "entries_from_reports",
    "entry_from_engine_event",
    "events_since",
    "exit_code_of",
    "insert_entries",
    "known_ids",
    "timeline_ctx",
]
