"""Reading the audit log: ``GET /api/audit`` (JSON or a streamed CSV attachment) and the
Settings > Audit log page (``/settings/audit``), both admin-only, both through one query.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel

from .audit import HASHED_FIELDS, at_text, audit_log
from .auth import admin_only
from .db import Database
from .errors import BadRequest
from .keys import DB_KEY
from .log_stream import time_query
from .openapi import Content, Param, operation
from .query import int_query

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
# A CSV export is every matching row unless limited; read and written in batches.
MAX_EXPORT = 1_000_000
BATCH = 1000
PAGE_SIZE = 50
FILTERS = ("user", "host_id", "action", "since", "until")
# The export's columns are the row's hashed fields, in the same order.
COLUMNS = HASHED_FIELDS
# Spreadsheets run a cell starting with one of these as a formula: such a cell (a
# login's attempted username, say) gets a leading apostrophe (docs/audit.md).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class AuditEntry(BaseModel):
    id: int
    at: str
    user: str | None
    action: str
    host_id: str | None
    container: str | None
    result: str
    client_ip: str | None
    detail: dict[str, Any]
    recording_id: str | None


@dataclass
class AuditQuery:
    user: str | None = None
    host_id: str | None = None
    action: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int | None = DEFAULT_LIMIT
    offset: int = 0


def _text(request: web.Request, name: str, limit: int = 160) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters", field=name)
    return value or None


def parse_query(request: web.Request, *, export: bool = False) -> AuditQuery:
    """The filters from the query string; a 400 naming the parameter otherwise."""
    since, until = time_query(request, "since", ceil=False), time_query(request, "until", ceil=True)
    if since is not None and until is not None and until < since:
        raise BadRequest("until must not be before since", code="invalid_query", field="until")
    default, hi = (None, MAX_EXPORT) if export else (DEFAULT_LIMIT, MAX_LIMIT)
    return AuditQuery(
        user=_text(request, "user", 64),
        host_id=_text(request, "host_id"),
        action=_text(request, "action", 64),
        since=since,
        until=until,
        limit=int_query(request, "limit", default, 1, hi),
        offset=int_query(request, "offset", 0, 0, MAX_EXPORT) or 0,
    )


def _moment(db: Database, seconds: int) -> datetime:
    moment = datetime.fromtimestamp(seconds, UTC)
    # SQLite compares the stored naive UTC text: bind naive UTC as well.
    return moment.replace(tzinfo=None) if db.is_sqlite else moment


def _where(db: Database, q: AuditQuery) -> list[Any]:
    c = audit_log.c
    clauses: list[Any] = []
    if q.user:
        clauses.append(c.user == q.user)
    if q.host_id:
        clauses.append(c.host_id == q.host_id)
    if q.action:
        # "container." or "container.*": every action under it; otherwise exactly that one.
        prefix = q.action[:-1] if q.action.endswith("*") else q.action
        if q.action.endswith((".", "*")):
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(c.action.like(escaped + "%", escape="\\"))
        else:
            clauses.append(c.action == q.action)
    if q.since is not None:
        clauses.append(c.at >= _moment(db, q.since))
    if q.until is not None:
        # until is inclusive of its whole second.
        clauses.append(c.at < _moment(db, q.until + 1))
    return clauses


def entry(row: Any) -> dict[str, Any]:
    try:
        detail = json.loads(row.detail or "{}")
    except ValueError:
        detail = {}
    return {
        "id": row.id,
        "at": at_text(row.at),
        "user": row.user,
        "action": row.action,
        "host_id": row.host_id,
        "container": row.container,
        "result": row.result,
        "client_ip": row.client_ip,
        "detail": detail if isinstance(detail, dict) else {},
        "recording_id": row.recording_id,
    }


async def iter_entries(db: Database, q: AuditQuery) -> AsyncIterator[dict[str, Any]]:
    """Matching rows, newest first, read a batch at a time (ids below the last seen)."""
    remaining = q.limit
    before: int | None = None
    offset = q.offset
    while remaining is None or remaining > 0:
        size = BATCH if remaining is None else min(BATCH, remaining)
        clauses = _where(db, q)
        if before is not None:
            clauses.append(audit_log.c.id < before)
        stmt = sa.select(audit_log).where(*clauses).order_by(audit_log.c.id.desc()).limit(size)
        if offset:
            stmt = stmt.offset(offset)
        async with db.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        offset = 0
        for row in rows:
            yield entry(row)
        if len(rows) < size:
            return
        before = rows[-1].id
        if remaining is not None:
            remaining -= len(rows)


async def list_entries(db: Database, q: AuditQuery) -> list[dict[str, Any]]:
    return [e async for e in iter_entries(db, q)]


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@admin_only
@operation(
    "The audit log",
    description="Newest first. `action` ending in `.` (or `*`) matches every action under "
    "it (`container.`); `since`/`until` are unix seconds or RFC 3339 (both inclusive). "
    "`format=csv` is every matching row (unless `limit`) as a streamed attachment with a "
    "header row; a cell that starts with `= + - @` gets a leading `'`.",
    tags=("audit",),
    query=(
        Param("user", "Only this user's rows."),
        Param("host_id", "Only rows about this host (`source:key`)."),
        Param("action", "An action, or a prefix ending in `.` or `*`."),
        Param("since", "From this time (unix seconds or RFC 3339)."),
        Param("until", "Up to this time (unix seconds or RFC 3339)."),
        Param(
            "limit", f"At most this many rows (1-{MAX_LIMIT}; CSV up to {MAX_EXPORT}).", "integer"
        ),
        Param("offset", "Skip this many rows.", "integer"),
        Param("format", "The answer's format.", enum=("json", "csv")),
    ),
    responses={
        200: (list[AuditEntry], Content("text/csv", None, "The rows as CSV, an attachment."))
    },
    errors=(400,),
)
async def get_audit(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv", code="invalid_query", field="format")
    db = request.app[DB_KEY]
    q = parse_query(request, export=fmt == "csv")
    if fmt == "json":
        return web.json_response(await list_entries(db, q))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"',
        }
    )
    await resp.prepare(request)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    async for e in iter_entries(db, q):
        writer.writerow([csv_cell(e[name]) for name in COLUMNS])
        if buf.tell() > 64 * 1024:
            await resp.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
    await resp.write(buf.getvalue().encode())
    await resp.write_eof()
    return resp


PAGE = Content("text/html", None, "An HTML page.")


def recording_href(app: web.Application, recording_id: str) -> str:
    """The player page when one is installed, else the recording itself."""
    for resource in app.router.resources():
        if resource.canonical == "/recordings/{id}":
            return f"/recordings/{recording_id}"
    return f"/api/recordings/{recording_id}"


@admin_only
@operation(
    "Settings: the audit log",
    tags=("ui",),
    query=(
        *(Param(name, f"Filter: {name}.") for name in FILTERS),
        Param("offset", "Skip this many rows.", "integer"),
    ),
    # A bad filter is the page again with the reason shown, as a 400.
    responses={200: PAGE, 400: PAGE},
)
async def settings_audit(request: web.Request) -> web.Response:
    filters = {name: request.query.get(name, "") for name in FILTERS}
    error: str | None = None
    rows: list[dict[str, Any]] = []
    q = AuditQuery()
    try:
        q = parse_query(request)
        q.limit = PAGE_SIZE + 1  # one more: is there an older page?
        rows = await list_entries(request.app[DB_KEY], q)
    except BadRequest as exc:
        error = exc.message
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    for row in rows:
        row["detail_text"] = json.dumps(row["detail"], sort_keys=True) if row["detail"] else ""
        if row["recording_id"]:
            row["recording_href"] = recording_href(request.app, row["recording_id"])
    kept = {k: v for k, v in filters.items() if v}

    def page_link(offset: int) -> str:
        return "/settings/audit?" + urlencode({**kept, "offset": offset})

    context = {
        "filters": filters,
        "rows": rows,
        "error": error,
        "offset": q.offset,
        "newer": page_link(max(0, q.offset - PAGE_SIZE)) if q.offset > 0 else None,
        "older": page_link(q.offset + PAGE_SIZE) if more else None,
        "export_csv": "/api/audit?" + urlencode({**kept, "format": "csv"}),
        "export_json": "/api/audit?" + urlencode({**kept, "format": "json", "limit": MAX_LIMIT}),
    }
    resp = aiohttp_jinja2.render_template("core/settings_audit.html", request, context)
    if error:
        resp.set_status(400)
    return resp


def setup_audit_routes(app: web.Application) -> None:
    app.router.add_get("/api/audit", get_audit)
    app.router.add_get("/settings/audit", settings_audit)


__all__ = ["AuditEntry", "iter_entries", "parse_query", "setup_audit_routes"]
