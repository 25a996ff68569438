"""Followed logs as server-sent events, and the log download: one slot per stream,
released on every exit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from datetime import UTC, datetime

from aiohttp import web

from .auth import current_user
from .containers import LogLine
from .errors import ApiError, BadRequest
from .keys import SETTINGS_KEY, STREAMS_KEY
from .query import flag, int_query
from .resolve import with_timeout
from .sources import HostSource, LogOptions
from .streams import StreamKind, StreamSlot

log = logging.getLogger("archnest.logs")

# A followed log sends a comment this often when quiet: proxies keep the connection and
# a client that went away is noticed.
PING_SECONDS = 15.0


def log_options(request: web.Request) -> LogOptions:
    return LogOptions(
        tail=int_query(request, "tail", 200, 0, 100_000),
        timestamps=flag(request, "timestamps"),
        since=int_query(request, "since", None, 0, 2**40),
    )


def download_options(request: web.Request) -> LogOptions:
    """The download's options: the whole log unless ``tail`` says otherwise, and times
    as unix seconds or RFC 3339 (``since`` rounded down, ``until`` up: both inclusive)."""
    since, until = time_query(request, "since", ceil=False), time_query(request, "until", ceil=True)
    if since is not None and until is not None and until < since:
        raise BadRequest("until must not be before since", code="invalid_query", field="until")
    return LogOptions(
        tail=int_query(request, "tail", None, 0, 10_000_000),
        timestamps=flag(request, "timestamps"),
        since=since,
        until=until,
    )


def stream_slot(request: web.Request, kind: StreamKind, host_id: str) -> StreamSlot:
    user = current_user(request)
    return request.app[STREAMS_KEY].acquire(kind, user.username if user else "", host_id)


async def stream_logs(
    request: web.Request, source: HostSource, key: str, ref: str, opts: LogOptions
) -> web.StreamResponse:
    registry = request.app[STREAMS_KEY]
    with stream_slot(request, "follow", source.host_id(key)):
        iterator = source.follow_logs(key, ref, opts).__aiter__()
        pending: asyncio.Future | None = None
        closing = asyncio.ensure_future(registry.closing.wait())
        try:
            # Open the stream before sending headers so a bad ref/host is a JSON error.
            first = await with_timeout(request.app, _first(iterator), "logs")
            resp = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
                }
            )
            await resp.prepare(request)
            try:
                await resp.write(b": connected\n\n")
                if first is not None:
                    await resp.write(_sse(first.model_dump(mode="json")))
                while True:
                    if pending is None:
                        pending = asyncio.ensure_future(iterator.__anext__())
                    await asyncio.wait(
                        {pending, closing},
                        timeout=PING_SECONDS,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if not pending.done():
                        if closing.done():
                            await resp.write(_sse({"reason": "server shutting down"}, "end"))
                            return resp
                        # A comment line: keeps proxies from timing out, notices a gone client.
                        await resp.write(b": ping\n\n")
                        continue
                    try:
                        line = pending.result()
                    except StopAsyncIteration:
                        pending = None
                        break
                    pending = None
                    if line is not None:
                        await resp.write(_sse(line.model_dump(mode="json")))
                await resp.write(b"event: end\ndata: {}\n\n")
            except (ConnectionResetError, asyncio.CancelledError):
                pass  # the client went away: the finally below releases the host side
            except ApiError as exc:
                with contextlib.suppress(ConnectionResetError):
                    await resp.write(
                        _sse({"error": {"code": exc.code, "message": exc.message}}, "error")
                    )
            return resp
        finally:
            # Every exit path (client gone, host error, shutdown, cancellation) ends up
            # here: the engine connection / SSH channel of the follow is released.
            closing.cancel()
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await asyncio.shield(aclose())


# RFC 3339 as a query value: a date, a time, an optional fraction and a zone.
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")
MAX_UNIX = 2**40
# The download is written in pieces of about this size: few writes for short lines,
# and never more than this (plus one line) held by the app per download.
CHUNK_BYTES = 64 * 1024


def time_query(request: web.Request, name: str, *, ceil: bool) -> int | None:
    """A time bound from the query as unix seconds: digits, or RFC 3339 with its zone
    (``2024-05-01T12:00:00Z``). Anything else is a 400 naming the parameter."""
    raw = request.query.get(name, "")
    if raw == "":
        return None
    value: float | None = None
    if raw.isascii() and raw.isdigit() and len(raw) <= 13:
        value = int(raw)
    elif m := _RFC3339.fullmatch(raw):
        whole, frac, zone = m.groups()
        with contextlib.suppress(ValueError):  # a date that does not exist (02-30)
            moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
            value = moment.timestamp() + (float("0." + frac) if frac else 0.0)
    if value is None or not 0 <= value < MAX_UNIX:
        raise BadRequest(
            f"{name} must be unix seconds or an RFC 3339 time such as 2024-05-01T12:00:00Z",
            code="invalid_query",
            field=name,
        )
    return math.ceil(value) if ceil else math.floor(value)


def download_name(ref: str, host_id: str, now: datetime | None = None) -> str:
    """``<container>-<host>-<UTC stamp>.log`` in characters safe in any file system."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{ref}-{host_id}-{stamp}") + ".log"


def line_bytes(line: LogLine) -> bytes:
    text = line.text if line.text.endswith("\n") else line.text + "\n"
    return ((line.ts + " ") if line.ts else "").encode() + text.encode("utf-8", "replace")


async def download_logs(
    request: web.Request, source: HostSource, key: str, ref: str, opts: LogOptions
) -> web.StreamResponse:
    """The log as a text attachment, streamed: lines go out as the host sends them (in
    pieces of ``CHUNK_BYTES``), ``await resp.write`` waits for a slow client, so the
    app holds one piece per download whatever the log's length."""
    host_id = source.host_id(key)
    idle = request.app[SETTINGS_KEY].host_timeout
    loop = asyncio.get_running_loop()
    with stream_slot(request, "follow", host_id) as slot:
        iterator = source.stream_logs(key, ref, opts).__aiter__()
        try:
            # A bad ref or host is still a JSON error: nothing is sent before this.
            first = await with_timeout(request.app, _first(iterator), "logs")
            resp = web.StreamResponse(
                headers={
                    "Content-Type": "text/plain; charset=utf-8",
                    "Content-Disposition": (
                        f'attachment; filename="{download_name(ref, host_id)}"'
                    ),
                    "Cache-Control": "no-store",
                    "X-Content-Type-Options": "nosniff",
                    "X-Accel-Buffering": "no",
                }
            )
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            handler = asyncio.current_task()
            stopped = False

            async def stop() -> None:  # the server shuts down: end this download
                nonlocal stopped
                stopped = True
                if handler is not None:
                    handler.cancel()

            slot.on_shutdown(stop)
            buf = bytearray(line_bytes(first) if first is not None else b"")
            try:
                # One deadline for the whole read, moved on (at most once a second, a
                # timer per line would cost more than the line) while lines arrive: a
                # host silent for about the host timeout ends the download.
                async with asyncio.timeout(idle) as deadline:
                    moved = loop.time()
                    async for line in iterator:
                        if line is None:
                            continue
                        buf += line_bytes(line)
                        if len(buf) >= CHUNK_BYTES:
                            await resp.write(bytes(buf))
                            buf.clear()
                        now = loop.time()
                        if now - moved > 1.0:
                            deadline.reschedule(now + idle)
                            moved = now
                if buf:
                    await resp.write(bytes(buf))
                await resp.write_eof()
            except (ApiError, TimeoutError) as exc:
                # The host failed mid-way or went silent: the transfer is cut without
                # its final chunk, so the client sees an incomplete download instead of
                # taking a short log for the whole one.
                why = exc.message if isinstance(exc, ApiError) else f"silent for {idle:g}s"
                log.warning("log download of %s on %s cut: %s", ref, host_id, why)
                if request.transport is not None:
                    request.transport.abort()
            except (ConnectionResetError, asyncio.CancelledError):
                # The client went away, or the server is stopping (then cut as above).
                if stopped and request.transport is not None:
                    request.transport.abort()
            return resp
        finally:
            # Client gone, host error, shutdown or the end: the engine connection or SSH
            # channel of the read is given back here.
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await asyncio.shield(aclose())


async def _first(iterator):  # type: ignore[no-untyped-def]
    # Sources yield None once the stream is open (after their own checks), so a missing
    # container is a proper 404 while a quiet one does not hit the host timeout.
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return None


def _sse(data: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()
