"""One replica runs a background job: the holder of a PostgreSQL session advisory lock.

With SQLite there is one process, so it always leads. With PostgreSQL the lock is taken
with ``pg_try_advisory_lock`` on a connection kept for the purpose; it is released when
that connection goes (the process ends, the connection breaks, or :meth:`release`), and
another replica takes it at its next try. Each job has its own key, so different jobs
may lead on different replicas.
"""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class LeaderLock:
    """``await lock.held()``: whether this process leads the job named by ``key``."""

    def __init__(self, key: int) -> None:
        self.key = key
        self._conn: AsyncConnection | None = None

    async def held(self, engine: AsyncEngine) -> bool:
        """SQLite: one process. PostgreSQL: the holder of the advisory lock (kept on a
        connection of its own; it is released when that connection goes)."""
        if engine.dialect.name == "sqlite":
            return True
        if self._conn is not None and not self._conn.closed:
            return True
        conn = await engine.connect()
        try:
            got = (
                await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            ).scalar()
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def release(self) -> None:
        """Give the lock up (at shutdown): another replica takes it at its next try."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


__all__ = ["LeaderLock"]
