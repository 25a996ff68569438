"""The audit log: who changed what, from where, with what result; append-only and
hash-chained (docs/audit.md).

Every row's ``hash`` is SHA-256 over the previous row's hash and a canonical JSON of the
row's own fields (its id included), so changing a row breaks its hash and removing one
breaks the chain; ``audit_head`` (one row, written in the same transaction as every
append) holds the chain's last id and hash, so removing the last row is noticed too.
Appends are serialised: one at a time per process (a lock), and on PostgreSQL across
replicas too (``pg_advisory_xact_lock`` in the insert transaction, the head read inside
it). Nothing but the retention job (:mod:`.audit_chain`) ever updates or deletes a row.

Rows come from :func:`audit_middleware` (every state-changing request, named by
:mod:`.audit_names`), the terminal bridge (``terminal.open``/``terminal.close``) and
plugins (:func:`audit_event`). ``detail`` holds names, ids and the names of fields sent,
never a value that could be a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlmodel import SQLModel

from .audit_names import Described, describe
from .auth import current_user, is_public
from .bodies import BODY_FIELDS_KEY
from .client_address import client_address
from .db import Database
from .errors import ApiError
from .keys import DB_KEY
from .secrets import is_secret_name

log = logging.getLogger("archnest.audit")

GENESIS = "0" * 64
# pg_advisory_xact_lock key of the chain ("audi" in ASCII): one appender at a time across
# every replica sharing the database.
PG_LOCK_KEY = 0x61756469
MAX_DETAIL_CHARS = 2048
MAX_TEXT = 200

AUDIT_KEY = web.RequestKey("archnest_audit", dict)

audit_log = sa.Table(
    "audit_log",
    SQLModel.metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("user", sa.String(64), nullable=True, index=True),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("host_id", sa.String(160), nullable=True, index=True),
    sa.Column("container", sa.String(256), nullable=True),
    sa.Column("result", sa.String(64), nullable=False),
    sa.Column("client_ip", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False, server_default="{}"),
    sa.Column("recording_id", sa.String(64), nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
audit_head = sa.Table(
    "audit_head",
    SQLModel.metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("first_id", sa.Integer(), nullable=False),
    sa.Column("first_prev_hash", sa.String(64), nullable=False),
    sa.Column("last_id", sa.Integer(), nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
)

HASHED_FIELDS = (
    "id",
    "at",
    "user",
    "action",
    "host_id",
    "container",
    "result",
    "client_ip",
    "detail",
    "recording_id",
)


def at_text(at: datetime) -> str:
    """The one text form of a row's time (UTC, microseconds): what is hashed and shown.
    SQLite hands back naive datetimes; every stored time is UTC."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the row's fields."""
    fields = {name: row.get(name) for name in HASHED_FIELDS}
    fields["at"] = at_text(row["at"])
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def _clip(value: Any, limit: int = MAX_TEXT) -> Any:
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_clip(v, limit) for v in list(value)[:50]]
    if isinstance(value, dict):
        return clean_detail(value)
    return str(value)[:limit]


def clean_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """Names and ids only: a key that names a secret (password, token, key, PEM...) is
    dropped with its value, long strings are cut; ``fields`` (the names of the fields a
    body sent) is kept whatever they are called, since those are names, not values."""
    out: dict[str, Any] = {}
    for key, value in (detail or {}).items():
        key = str(key)[:64]
        if key != "fields" and is_secret_name(key):
            continue
        out[key] = _clip(value)
    return out


def detail_text(detail: Mapping[str, Any] | None) -> str:
    text = json.dumps(clean_detail(detail), sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_DETAIL_CHARS:
        text = json.dumps({"truncated": True})
    return text


_locks: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock(db: Database) -> asyncio.Lock:
    lock = _locks.get(db)
    if lock is None:
        lock = _locks[db] = asyncio.Lock()
    return lock


async def lock_chain(conn: Any, db: Database) -> None:
    """Take the chain's write lock inside ``conn``'s transaction (held until it ends)."""
    if db.is_sqlite:
        # The first statement a write: SQLite takes its write lock now, so the head read
        # next is the one this transaction appends to (another process cannot slip in).
        await conn.execute(sa.update(audit_head).where(audit_head.c.id == 1).values(id=1))
    else:
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_LOCK_KEY)))


async def append(
    db: Database,
    *,
    action: str,
    user: str | None = None,
    host_id: str | None = None,
    container: str | None = None,
    result: str = "ok",
    client_ip: str | None = None,
    detail: Mapping[str, Any] | None = None,
    recording_id: str | int | None = None,
) -> int:
    """Append one row to the chain; returns its id."""
    row: dict[str, Any] = {
        "user": _clip(user, 64),
        "action": str(action)[:64],
        "host_id": _clip(host_id, 160),
        "container": _clip(container, 256),
        "result": str(result)[:64],
        "client_ip": _clip(client_ip, 64),
        "detail": detail_text(detail),
        "recording_id": None if recording_id is None else str(recording_id)[:64],
    }
    async with _lock(db), db.engine.begin() as conn:
        await lock_chain(conn, db)
        head = (
            await conn.execute(
                sa.select(audit_head.c.last_id, audit_head.c.last_hash).where(audit_head.c.id == 1)
            )
        ).one()
        row["id"] = head.last_id + 1
        row["at"] = datetime.now(UTC)
        row["prev_hash"] = head.last_hash
        row["hash"] = row_hash(head.last_hash, row)
        await conn.execute(sa.insert(audit_log).values(**row))
        await conn.execute(
            sa.update(audit_head)
            .where(audit_head.c.id == 1)
            .values(last_id=row["id"], last_hash=row["hash"])
        )
    return int(row["id"])


def note(request: web.Request, **fields: Any) -> None:
    """Enrich (or override) the row the middleware writes for this request: ``user``
    (e.g. the attempted name of a failed login), ``action``, ``host_id``, ``container``,
    ``result``, ``recording_id``, ``detail`` (merged), or ``skip=True``."""
    current = request.get(AUDIT_KEY)
    if current is None:
        current = {}
        request[AUDIT_KEY] = current
    extra = fields.pop("detail", None)
    current.update(fields)
    if extra:
        current.setdefault("detail", {}).update(extra)


async def audit_event(
    request_or_app: web.Request | web.Application,
    action: str,
    *,
    host_id: str | None = None,
    container: str | None = None,
    result: str = "ok",
    detail: Mapping[str, Any] | None = None,
    recording_id: str | int | None = None,
) -> int:
    """Write one audit row now; returns its id.

    With a request, the user and client address are the request's; with the app (a
    background task), both are empty. ``detail`` must hold names and ids only: keys
    that name a secret are dropped, and the whole is capped at 2 KiB.
    """
    if isinstance(request_or_app, web.Request):
        request = request_or_app
        user = current_user(request)
        app = request.app
        username = user.username if user else None
        address: str | None = client_address(request)
    else:
        app, username, address = request_or_app, None, None
    return await append(
        app[DB_KEY],
        action=action,
        user=username,
        host_id=host_id,
        container=container,
        result=result,
        client_ip=address,
        detail=detail,
        recording_id=recording_id,
    )


class TerminalAudit:
    """A terminal session's two rows: ``terminal.open`` when it starts, ``terminal.close``
    (seconds, bytes in and out) when it ends. ``recording_id`` set before the close (or
    given at the open) is written with the row; :meth:`wrap` counts the session's bytes."""

    def __init__(self, request: web.Request, host_id: str, container: str, shell: str) -> None:
        self.request, self.host_id, self.container, self.shell = request, host_id, container, shell
        self.recording_id: str | int | None = None
        self.bytes_in = self.bytes_out = 0
        self.started = time.monotonic()

    async def open(self, result: str = "ok", recording_id: str | int | None = None) -> None:
        self.recording_id = recording_id if recording_id is not None else self.recording_id
        await self._write("terminal.open", result, {"shell": self.shell})

    def wrap(self, session: Any) -> Any:
        return _CountedSession(session, self)

    async def close(self) -> None:
        seconds = round(time.monotonic() - self.started, 3)
        detail = {"seconds": seconds, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out}
        # Shielded: the handler is often being cancelled (the browser went away).
        await asyncio.shield(self._write("terminal.close", "ok", detail))

    async def _write(self, action: str, result: str, detail: dict[str, Any]) -> None:
        try:
            await audit_event(
                self.request,
                action,
                host_id=self.host_id,
                container=self.container,
                result=result,
                detail=detail,
                recording_id=self.recording_id,
            )
        except Exception:
            log.exception("audit: writing %s failed", action)


class _CountedSession:
    """An ExecSession that counts what passes (stdin in, output out) and delegates."""

    def __init__(self, session: Any, audit: TerminalAudit) -> None:
        self._session, self._audit = session, audit

    async def read(self) -> bytes:
        data = await self._session.read()
        self._audit.bytes_out += len(data or b"")
        return data

    async def write(self, data: bytes) -> None:
        self._audit.bytes_in += len(data)
        await self._session.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _status_of(exc: BaseException | None, response: web.StreamResponse | None) -> int:
    if isinstance(exc, ApiError | web.HTTPException):
        return exc.status
    if exc is not None:
        return 500
    return response.status if response is not None else 500


def result_of(exc: BaseException | None, response: web.StreamResponse | None) -> str:
    """``ok``, an API error's code, or the HTTP status of a failure."""
    if isinstance(exc, ApiError):
        return exc.code
    if isinstance(exc, web.HTTPException):
        return "ok" if exc.status < 400 else str(exc.status)
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if exc is not None:
        return "internal_error"
    status = response.status if response is not None else 500
    return "ok" if status < 400 else str(status)


def make_audit_middleware() -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def audit_middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        what = describe(request)
        if what is None:
            return await handler(request)
        response: web.StreamResponse | None = None
        error: BaseException | None = None
        try:
            response = await handler(request)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            result = result_of(error, response)
            extra = request.get(AUDIT_KEY) or {}
            # Shielded: a client that goes away mid-request must not cancel its record.
            await asyncio.shield(_record(request, what, result, response, error, extra))

    return audit_middleware


async def _record(
    request: web.Request,
    what: Described,
    result: str,
    response: web.StreamResponse | None,
    error: BaseException | None,
    extra: dict[str, Any],
) -> None:
    if extra.get("skip"):
        return
    result = str(extra.get("result", result))
    if is_public(request.match_info.handler) and _status_of(error, response) == 429:
        return  # throttled before anything was checked: volume, not news (docs/audit.md)
    user = current_user(request)
    detail = dict(what.detail)
    fields = request.get(BODY_FIELDS_KEY)
    if fields:
        detail["fields"] = fields
    detail.update(extra.get("detail") or {})
    detail.update(what.from_response(response))
    action = extra.get("action") or what.action(result)
    if action is None:
        return
    try:
        await append(
            request.app[DB_KEY],
            action=action,
            user=extra.get("user") or (user.username if user else None),
            host_id=extra.get("host_id") or what.host_id(response),
            container=extra.get("container") or what.container,
            result=result,
            client_ip=client_address(request),
            detail=detail,
            recording_id=extra.get("recording_id"),
        )
    except Exception:
        # The change itself happened; a lost record is logged loudly, never a 500.
        log.exception("audit: writing the row for %s failed", action)


__all__ = [
    "AUDIT_KEY",
    "TerminalAudit",
    "append",
    "audit_event",
    "make_audit_middleware",
    "note",
]
