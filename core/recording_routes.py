"""Reading terminal recordings: ``GET /api/recordings`` (the list), ``GET
/api/recordings/{id}`` (the asciicast, decompressed as it is sent), the replay page
``/recordings/{id}`` and Settings > Recordings; all admin-only (docs/recordings.md).
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel

from .audit import at_text
from .auth import admin_only
from .errors import BadRequest, NotFound
from .headers import CONTENT_SECURITY_POLICY
from .keys import DB_KEY, SETTINGS_KEY
from .openapi import Content, Param, operation
from .query import int_query
from .recordings import is_recording_id, recordings, retention_ctx, stored_path

DEFAULT_LIMIT, MAX_LIMIT = 100, 500
PAGE_SIZE = 50
CHUNK = 64 * 1024
ASCIICAST = "application/x-asciicast"
# asciinema-player runs its terminal emulator as WebAssembly, which Chromium compiles only
# with 'wasm-unsafe-eval' (it allows compiling WebAssembly, not JavaScript eval): the
# replay page, and only it, adds that to the app's policy.
PLAYER_CSP = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'"
)


class RecordingEntry(BaseModel):
    id: str
    user: str | None
    host_id: str
    container: str
    cmd: str
    started_at: str
    ended_at: str | None
    duration: float | None
    bytes: int
    input_recorded: bool


def _entry(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": row.user,
        "host_id": row.host_id,
        "container": row.container,
        "cmd": row.cmd,
        "started_at": at_text(row.started_at),
        "ended_at": at_text(row.ended_at) if row.ended_at is not None else None,
        "duration": row.duration,
        "bytes": int(row.bytes or 0),
        "input_recorded": bool(row.input_recorded),
    }


def _filter(request: web.Request, name: str, limit: int) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters", field=name)
    return value or None


async def _list(
    request: web.Request, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    user, host_id = _filter(request, "user", 64), _filter(request, "host_id", 160)
    stmt = sa.select(recordings)
    if user:
        stmt = stmt.where(recordings.c.user == user)
    if host_id:
        stmt = stmt.where(recordings.c.host_id == host_id)
    stmt = stmt.order_by(recordings.c.started_at.desc(), recordings.c.id).limit(limit)
    async with request.app[DB_KEY].engine.connect() as conn:
        rows = (await conn.execute(stmt.offset(offset))).all()
    kept = {k: v for k, v in (("user", user), ("host_id", host_id)) if v}
    return [_entry(r) for r in rows], kept


async def _row(request: web.Request) -> Any:
    rec_id = request.match_info["id"]
    if is_recording_id(rec_id):
        async with request.app[DB_KEY].engine.connect() as conn:
            row = (
                await conn.execute(sa.select(recordings).where(recordings.c.id == rec_id))
            ).first()
        if row is not None:
            return row
    raise NotFound("no such recording", code="recording_not_found")


@admin_only
@operation(
    "Terminal recordings",
    description="Newest first; metadata only (the session itself is `GET /api/recordings/{id}`).",
    tags=("audit",),
    query=(
        Param("user", "Only this user's sessions."),
        Param("host_id", "Only sessions on this host (`source:key`)."),
        Param("limit", f"At most this many (1-{MAX_LIMIT}, default {DEFAULT_LIMIT}).", "integer"),
        Param("offset", "Skip this many.", "integer"),
    ),
    responses={200: list[RecordingEntry]},
    errors=(400,),
)
async def list_recordings(request: web.Request) -> web.Response:
    limit = int_query(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
    offset = int_query(request, "offset", 0, 0, 1_000_000) or 0
    rows, _ = await _list(request, limit, offset)
    return web.json_response(rows)


@admin_only
@operation(
    "A terminal session as asciicast v2",
    description="The header line, then `[seconds, code, data]` events: `o` output, `r` "
    "resize, `i` input (only when input recording was on), `m` a marker (the size limit "
    "was reached). A session still open reads up to its last second.",
    tags=("audit",),
    path=(Param("id", "The recording's id (from the audit log or the list)."),),
    responses={200: Content(ASCIICAST, None, "Newline-delimited JSON (asciicast v2).")},
    errors=(404,),
)
async def get_recording(request: web.Request) -> web.StreamResponse:
    row = await _row(request)
    path = stored_path(request.app[SETTINGS_KEY].data_dir, row.path)
    try:
        gz = gzip.open(path, "rb") if path is not None else None
    except FileNotFoundError:
        gz = None
    if gz is None:
        raise NotFound("the recording's file is gone", code="recording_not_found")
    resp = web.StreamResponse(
        headers={
            "Content-Type": ASCIICAST,
            "Content-Disposition": f'inline; filename="{row.id}.cast"',
            "Cache-Control": "no-store",
        }
    )
    await resp.prepare(request)
    try:
        while True:
            try:
                chunk = await asyncio.to_thread(gz.read, CHUNK)
            except (EOFError, zlib.error, gzip.BadGzipFile):
                # A session still open (or a process that died mid-session): what was
                # flushed is complete lines; the stream simply ends there.
                break
            if not chunk:
                break
            await resp.write(chunk)
    finally:
        gz.close()
    await resp.write_eof()
    return resp


PAGE = Content("text/html", None, "An HTML page.")


@admin_only
@operation(
    "Replay a terminal recording",
    tags=("ui",),
    path=(Param("id", "The recording's id."),),
    responses={200: PAGE},
    errors=(404,),
)
async def recording_page(request: web.Request) -> web.Response:
    rec = _entry(await _row(request))
    resp = aiohttp_jinja2.render_template("core/recording.html", request, {"rec": rec})
    resp.headers["Content-Security-Policy"] = PLAYER_CSP
    return resp


@admin_only
@operation(
    "Settings: terminal recordings",
    tags=("ui",),
    query=(
        Param("user", "Filter: user."),
        Param("host_id", "Filter: host."),
        Param("offset", "Skip this many.", "integer"),
    ),
    # A bad filter is the page again with the reason shown, as a 400.
    responses={200: PAGE, 400: PAGE},
)
async def settings_recordings(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    error: str | None = None
    rows: list[dict[str, Any]] = []
    kept: dict[str, str] = {}
    offset = 0
    try:
        offset = int_query(request, "offset", 0, 0, 1_000_000) or 0
        rows, kept = await _list(request, PAGE_SIZE + 1, offset)
    except BadRequest as exc:
        error = exc.message
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]

    def page_link(at: int) -> str:
        return "/settings/recordings?" + urlencode({**kept, "offset": at})

    context = {
        "rows": rows,
        "filters": {
            "user": request.query.get("user", ""),
            "host_id": request.query.get("host_id", ""),
        },
        "error": error,
        "offset": offset,
        "newer": page_link(max(0, offset - PAGE_SIZE)) if offset > 0 else None,
        "older": page_link(offset + PAGE_SIZE) if more else None,
        "enabled": settings.recordings,
        "record_input": settings.record_input,
        "retention_days": settings.recording_retention_days,
        "now": datetime.now(UTC),
    }
    resp = aiohttp_jinja2.render_template("core/settings_recordings.html", request, context)
    if error:
        resp.set_status(400)
    return resp


def setup_recording_routes(app: web.Application) -> None:
    app.router.add_get("/api/recordings", list_recordings)
    app.router.add_get("/api/recordings/{id}", get_recording)
    app.router.add_get("/recordings/{id}", recording_page)
    app.router.add_get("/settings/recordings", settings_recordings)
    # Started after the database (its context is appended before the routes are set up).
    app.cleanup_ctx.append(retention_ctx)


__all__ = ["RecordingEntry", "setup_recording_routes"]
