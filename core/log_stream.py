"""Followed logs as server-sent events: one slot per stream, released on every exit."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from .auth import current_user
from .errors import ApiError
from .keys import STREAMS_KEY
from .query import flag, int_query
from .resolve import with_timeout
from .sources import HostSource, LogOptions
from .streams import StreamKind, StreamSlot

# A followed log sends a comment this often when quiet: proxies keep the connection and
# a client that went away is noticed.
PING_SECONDS = 15.0


def log_options(request: web.Request) -> LogOptions:
    return LogOptions(
        tail=int_query(request, "tail", 200, 0, 100_000),
        timestamps=flag(request, "timestamps"),
        since=int_query(request, "since", None, 0, 2**40),
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
