"""Checking the audit chain (``archnest audit verify``) and the retention job.

Verification walks the rows in id order from where the chain starts (``audit_head``:
the first id kept and the hash before it) and fails at the first row that was changed
(its hash does not match its fields), removed (a gap in the ids, or a ``prev_hash``
that is not the previous row's hash) or added outside the app; at the end the last row
must be the head's last id and hash, so removing the last row is noticed too.

Retention (``ARCHNEST_AUDIT_RETENTION_DAYS``, default 365, 0 = forever) deletes rows
older than that from the start of the chain only, and moves the head's start in the
same transaction: what is left still verifies.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from aiohttp import web

from .audit import _lock, audit_head, audit_log, lock_chain, row_hash
from .daily import daily
from .db import Database
from .keys import DB_KEY, SETTINGS_KEY

log = logging.getLogger("archnest.audit")

BATCH = 2000


@dataclass
class Verdict:
    ok: bool
    rows: int
    bad_id: int | None = None
    reason: str = ""


async def verify(db: Database) -> Verdict:
    """Walk the whole chain; the first problem found, or ok with the row count."""
    async with db.engine.connect() as conn:
        head = (await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).one()
        expected, prev, count = head.first_id, head.first_prev_hash, 0
        first = (await conn.execute(sa.select(sa.func.min(audit_log.c.id)))).scalar()
        if first is not None and first < head.first_id:
            return Verdict(False, 0, first, f"row {first} is before the chain's start")
        after = expected - 1
        while True:
            rows = (
                await conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.id > after)
                    .order_by(audit_log.c.id)
                    .limit(BATCH)
                )
            ).all()
            if not rows:
                break
            for row in rows:
                fields = row._mapping
                if row.id != expected:
                    return Verdict(
                        False,
                        count,
                        expected,
                        f"row {expected} is missing (the next row is {row.id})",
                    )
                if row.prev_hash != prev:
                    return Verdict(
                        False, count, row.id, f"row {row.id} does not follow the row before it"
                    )
                if row_hash(prev, fields) != row.hash:
                    return Verdict(False, count, row.id, f"row {row.id} was changed")
                if row.id > head.last_id:
                    return Verdict(False, count, row.id, f"row {row.id} is past the chain head")
                prev, expected, count = row.hash, row.id + 1, count + 1
            after = rows[-1].id
        if expected - 1 != head.last_id or prev != head.last_hash:
            return Verdict(
                False,
                count,
                head.last_id,
                f"row {head.last_id} is missing (the chain head ends there)",
            )
        return Verdict(True, count)


async def apply_retention(db: Database, days: int, now: datetime | None = None) -> int:
    """Delete rows older than ``days`` from the start of the chain; how many went."""
    if days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    # SQLite compares the stored naive UTC text: bind naive UTC as well.
    bound = cutoff.astimezone(UTC).replace(tzinfo=None) if db.is_sqlite else cutoff
    async with _lock(db), db.engine.begin() as conn:
        await lock_chain(conn, db)
        head = (await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).one()
        keep = (
            await conn.execute(
                sa.select(sa.func.min(audit_log.c.id)).where(audit_log.c.at >= bound)
            )
        ).scalar()
        if keep is None:
            # Everything is old: the chain continues from the head's last hash.
            first_id, first_prev = head.last_id + 1, head.last_hash
        else:
            first_id = keep
            first_prev = (
                await conn.execute(sa.select(audit_log.c.prev_hash).where(audit_log.c.id == keep))
            ).scalar_one()
        if first_id <= head.first_id:
            return 0
        gone = await conn.execute(sa.delete(audit_log).where(audit_log.c.id < first_id))
        await conn.execute(
            sa.update(audit_head)
            .where(audit_head.c.id == 1)
            .values(first_id=first_id, first_prev_hash=first_prev)
        )
        return int(gone.rowcount or 0)


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """The daily retention job, for ``app.cleanup_ctx``."""
    days = app[SETTINGS_KEY].audit_retention_days
    if days <= 0:
        yield
        return
    async with daily(f"audit retention ({days} days)", lambda: apply_retention(app[DB_KEY], days)):
        yield


__all__ = ["Verdict", "apply_retention", "retention_ctx", "verify"]
