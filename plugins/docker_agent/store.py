"""Storage of the latest report per host, with group commit on the ingest path.

Every accepted report goes through one writer task: reports that arrive while a
transaction is running are merged into the next one (latest per host wins, the
``report_count`` of the row grows by all of them). One commit then covers many
reports, which is what lets SQLite sustain a thousand reports per second. The HTTP
answer is sent only after the commit that holds the report, so a 204 is never lost.

A host's containers are a row of their own, rewritten only when a report changed them
(on SQLite; on PostgreSQL, where several replicas may write, always): most reports
change the report's small row only.

On a SQLite file the writer has its own connection in its own thread
(:class:`SqliteWriter`): a batch is one hand-over to that thread (BEGIN IMMEDIATE, one
multi-row statement per table, COMMIT) instead of a round trip per statement through
the async driver. Durability is the app's (WAL, ``synchronous=NORMAL``, as every
connection of the core): a committed report survives a crash of the app; a power cut
may lose the last commits, as it may for any other write of the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .models import DockerAgentContainers, DockerAgentReport

log = logging.getLogger("archnest.docker_agent")

_TABLE = DockerAgentReport.__table__  # type: ignore[attr-defined]
_CONTAINERS = DockerAgentContainers.__table__  # type: ignore[attr-defined]
_REPORT_KEYS = tuple(c.name for c in _TABLE.c)
_LIST_COLUMNS = (
    _TABLE.c.host,
    _TABLE.c.agent_version,
    _TABLE.c.reported_at,
    _TABLE.c.received_at,
    _TABLE.c.container_count,
    _TABLE.c.running_count,
    _TABLE.c.report_count,
)


# The VALUES group of a compiled single-row INSERT: "VALUES (?, ?, ...)".
_VALUES = re.compile(r"VALUES \((\?(?:, \?)*)\)")


class _Compiled:
    """A statement as SQLAlchemy compiles it for SQLite (qmark placeholders, in the
    order of ``positiontup``), bound with the values SQLAlchemy would bind (its
    DATETIME text format): rows read back through SQLAlchemy like any other."""

    def __init__(self, stmt: Any, table: Any, engine: AsyncEngine) -> None:
        dialect = engine.dialect
        compiled = stmt.compile(dialect=dialect, column_keys=[c.name for c in table.c])
        self.sql = str(compiled)
        self.columns = list(compiled.positiontup or ())
        self._convert = [
            (i, proc)
            for i, name in enumerate(self.columns)
            if (proc := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]

        # The statement for n rows at once: one VALUES group per row. Executed as one
        # statement rather than once per row (executemany), a batch is a handful of
        # SQLite steps: each step gives the GIL up and must take it back from the busy
        # event loop, and those waits, not SQLite, were most of a batch's time (about
        # 2.5 ms of wall time for 0.7 ms of CPU, batches of four reports).
        head, values, tail = _VALUES.split(self.sql, maxsplit=1)
        self._sql_parts = (head + "VALUES ", values, tail)
        self._sql_for: dict[int, str] = {}
        # SQLite's limit on bound parameters (32766 since 3.32).
        self.max_rows = max(1, 32766 // len(self.columns))

    def statements(self, rows: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
        """``rows`` as (SQL, parameters) of as few statements as SQLite allows."""
        out = []
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start : start + self.max_rows]
            params: list[Any] = []
            for row in chunk:
                value = [row[c] for c in self.columns]
                for i, proc in self._convert:
                    value[i] = proc(value[i])
                params += value
            out.append((self._sql(len(chunk)), params))
        return out

    def _sql(self, rows: int) -> str:
        sql = self._sql_for.get(rows)
        if sql is None:
            head, values, tail = self._sql_parts
            sql = head + ", ".join([f"({values})"] * rows) + tail
            if len(self._sql_for) < 64:  # batches are mostly of a few sizes
                self._sql_for[rows] = sql
        return sql


class SqliteWriter:
    """The ingest's own connection to the SQLite file, used from one thread only."""

    def __init__(
        self, path: str, engine: AsyncEngine, upsert: Any, containers: Any, keep: Any
    ) -> None:
        self.path = path
        self._reports = _Compiled(upsert, _TABLE, engine)
        self._containers = _Compiled(containers, _CONTAINERS, engine)
        self._keep = _Compiled(keep, _CONTAINERS, engine)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="docker_agent-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def write(self, rows: list[dict[str, Any]], changed: list[dict[str, Any]]) -> None:
        """Upsert ``rows``; the containers of those in ``changed`` are replaced, the
        others' are inserted only if the host has none stored (forgotten meanwhile)."""
        statements = self._statements(rows, changed)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write, statements)

    def write_now(self, rows: list[dict[str, Any]], changed: list[dict[str, Any]]) -> None:
        """:meth:`write` in the calling thread (the ingest worker process's writer)."""
        self._write(self._statements(rows, changed))

    def _statements(
        self, rows: list[dict[str, Any]], changed: list[dict[str, Any]]
    ) -> list[tuple[str, list[Any]]]:
        replaced = {id(r) for r in changed}
        kept = [r for r in rows if id(r) not in replaced]
        return [
            *self._reports.statements(rows),
            *self._containers.statements(changed),
            *self._keep.statements(kept),
        ]

    def _write(self, statements: list[tuple[str, list[Any]]]) -> None:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            # As the core's connections: WAL (set on the file by the core already),
            # synchronous=NORMAL, and waiting for a lock rather than failing at once.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            # SQLite as Debian builds it zeroes every freed page (secure_delete=ON): a
            # report replacing its host's row would write its ~20 overflow pages twice.
            # FAST still clears deleted content inside the pages being written anyway;
            # the freed pages, which held the host's previous report (env masked, as
            # served to every viewer), are left to the next report, which reuses them.
            conn.execute("PRAGMA secure_delete=FAST")
            self._conn = conn
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            # Closed and opened again for the next batch: no half transaction survives.
            self._conn = None
            with contextlib.suppress(Exception):
                conn.close()
            raise

    def close_now(self) -> None:
        """Close the connection from the calling thread (after :meth:`write_now`)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._thread.shutdown(wait=False)

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, _close)
        self._thread.shutdown(wait=True)


def sqlite_path(engine: AsyncEngine) -> str | None:
    """The database file of a SQLite engine (None: not SQLite, in memory, or a URI)."""
    url = engine.url
    if engine.dialect.name != "sqlite":
        return None
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:") or url.query.get("uri"):
        return None
    return name


def utc_naive(value: datetime | None = None) -> datetime:
    """Naive UTC, as stored in the plugin's plain DateTime columns (the same on SQLite
    and PostgreSQL); an aware value is converted, a naive one is taken as UTC."""
    if value is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


@dataclass
class HostRow:
    """A host as the hosts list shows it (without the containers)."""

    host: str
    agent_version: str
    reported_at: datetime
    received_at: datetime
    container_count: int
    running_count: int
    report_count: int

    def is_stale(self, stale_seconds: int, now: datetime | None = None) -> bool:
        now = utc_naive(now)
        return now - utc_naive(self.received_at) > timedelta(seconds=stale_seconds)


class ReportStore:
    """Upserts reports (batched) and reads them back."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 500):
        self.engine = engine
        path = sqlite_path(engine)
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Counters for operators and the benchmark (reports per commit).
        self.batches = 0
        self.reports_written = 0
        dialect = engine.dialect.name
        if dialect == "sqlite":
            self._insert = sqlite.insert
        elif dialect == "postgresql":
            self._insert = postgresql.insert
        else:  # both ON CONFLICT dialects cover what the project supports
            raise RuntimeError(f"docker_agent: unsupported database dialect {dialect!r}")
        # Built once: constructing the statement costs more than a small batch's rows.
        stmt = self._insert(_TABLE)
        excluded = stmt.excluded
        self._upsert = stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.host],
            set_={
                **{c.name: excluded[c.name] for c in _TABLE.c if c.name != "host"},
                # Merged reports of one batch count individually (see _write).
                "report_count": _TABLE.c.report_count + excluded.report_count,
            },
        )
        stmt = self._insert(_CONTAINERS)
        self._containers_upsert = stmt.on_conflict_do_update(
            index_elements=[_CONTAINERS.c.host],
            set_={"containers_json": stmt.excluded.containers_json},
        )
        self._containers_keep = self._insert(_CONTAINERS).on_conflict_do_nothing(
            index_elements=[_CONTAINERS.c.host]
        )
        # Hosts whose latest containers may not be stored: a batch holding them failed.
        # Their next report replaces the stored containers even if it changed nothing
        # since the report that failed (which the ingest's cache already holds).
        self._unsure: set[str] = set()
        self._sqlite = (
            SqliteWriter(path, engine, self._upsert, self._containers_upsert, self._containers_keep)
            if path
            else None
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="docker_agent-writer")

    async def close(self) -> None:
        """Stop after every queued report is written (or failed back to its sender)."""
        if self._task is None:
            return
        await self._queue.join()
        log.info(
            "agent report writer: %d reports in %d commits", self.reports_written, self.batches
        )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._sqlite is not None:
            await self._sqlite.close()

    async def save(self, row: dict[str, Any]) -> None:
        """Queue one report row and wait until it is committed (raises if it was not)."""
        if self._task is None or self._task.done():
            raise RuntimeError("docker_agent report writer is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((row, fut))
        await fut

    async def _writer(self) -> None:
        conn: AsyncConnection | None = None
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                conn = await self._write_batch(conn, batch)
        finally:
            if conn is not None:
                await asyncio.shield(conn.close())

    async def _write_batch(
        self, conn: AsyncConnection | None, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]
    ) -> AsyncConnection | None:
        """Write one batch and settle its futures; returns the connection to reuse.

        The writer keeps one connection checked out: a pool checkout per batch costs
        more than the upsert itself. After a failure the connection is dropped and the
        next batch opens a fresh one.
        """
        rows = self._merge(row for row, _ in batch)
        try:
            if self._sqlite is not None:
                changed = self._to_replace(rows)
                await self._sqlite.write(rows, changed)
                self._unsure.difference_update(r["host"] for r in changed)
            elif conn is None:
                conn = await self.engine.connect()
                await self._write(conn, rows)
            else:
                try:
                    await self._write(conn, rows)
                except Exception:
                    # The held connection skips the pool's pre-ping: after a database
                    # restart it is dead. One retry on a fresh one (the upsert is
                    # idempotent), so the first report after a restart is not lost.
                    with contextlib.suppress(Exception):
                        await conn.close()
                    conn = None
                    conn = await self.engine.connect()
                    await self._write(conn, rows)
        except Exception as exc:  # report the failure to every waiting sender
            log.exception("writing %d agent report(s) failed", len(batch))
            self._unsure.update(r["host"] for r in rows)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            conn = None
        else:
            self.batches += 1
            self.reports_written += len(batch)
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
        finally:
            for _ in batch:
                self._queue.task_done()
        return conn

    def close_now(self) -> None:
        """Close what :meth:`write_now` opened (the ingest worker, at its end)."""
        if self._sqlite is not None:
            self._sqlite.close_now()

    def write_now(self, rows: list[dict[str, Any]]) -> None:
        """Store report rows in one transaction in the calling thread, without the
        writer task (SQLite only: the ingest worker process batches by itself)."""
        assert self._sqlite is not None
        merged = self._merge(rows)
        changed = self._to_replace(merged)
        try:
            self._sqlite.write_now(merged, changed)
        except Exception:
            self._unsure.update(r["host"] for r in merged)
            raise
        self._unsure.difference_update(r["host"] for r in changed)
        self.batches += 1
        self.reports_written += len(rows)

    def _to_replace(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows whose containers are written (SQLite). One process owns the file:
        what it committed last is what is stored, so unchanged containers are not
        written again, unless the batch that held the host's latest ones failed."""
        return [r for r in rows if r["containers_changed"] or r["host"] in self._unsure]

    @staticmethod
    def _merge(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """One row per host: the latest report, counting all of the batch's (and with
        changed containers if any of them changed them)."""
        merged: dict[str, dict[str, Any]] = {}
        for row in rows:  # arrival order: the later report of a host wins
            prev = merged.get(row["host"])
            if prev is None:
                merged[row["host"]] = row
                continue
            merged[row["host"]] = {
                **row,
                "report_count": prev["report_count"] + row["report_count"],
                "containers_changed": prev["containers_changed"] or row["containers_changed"],
            }
        return list(merged.values())

    async def _write(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        # Several replicas may write on PostgreSQL: the containers are always stored.
        try:
            await conn.execute(self._upsert, [{k: r[k] for k in _REPORT_KEYS} for r in rows])
            await conn.execute(
                self._containers_upsert,
                [{"host": r["host"], "containers_json": r["containers_json"]} for r in rows],
            )
            await conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.rollback()
            raise

    async def hosts(self) -> list[HostRow]:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(*_LIST_COLUMNS).order_by(_TABLE.c.host))
            return [HostRow(**row._mapping) for row in result]

    async def host(self, host: str) -> HostRow | None:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(*_LIST_COLUMNS).where(_TABLE.c.host == host))
            row = result.first()
        return HostRow(**row._mapping) if row else None

    async def report(self, host: str) -> dict[str, Any] | None:
        """The full stored row of ``host`` with its ``containers_json`` (containers and
        stats samples still as JSON text: :func:`.normalise.with_stats` joins them)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(_TABLE, _CONTAINERS.c.containers_json)
                .join(_CONTAINERS, _CONTAINERS.c.host == _TABLE.c.host)
                .where(_TABLE.c.host == host)
            )
            row = result.first()
        return dict(row._mapping) if row else None

    async def forget(self, host: str) -> bool:
        """Delete a host's report (it reappears if its agent reports again)."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(_CONTAINERS).where(_CONTAINERS.c.host == host))
            result = await conn.execute(delete(_TABLE).where(_TABLE.c.host == host))
        return bool(result.rowcount)
