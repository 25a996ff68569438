"""``GET /api/events``: the live state's changes as server-sent events.

Each subscriber (one per browser tab) has a bounded queue. An event is encoded once and
put on every queue; a subscriber too slow to keep up is dropped rather than slowing the
others or growing without bound: its stream ends, the browser's EventSource reconnects
and the page reloads its list (``event: hello`` starts every stream for that reason).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

from .auth import current_user
from .errors import TooManyRequests
from .keys import STREAMS_KEY
from .openapi import Content, operation

# A page sees a few events per second; a queue this long absorbs a burst (a compose
# project restarting) without dropping anyone.
QUEUE_EVENTS = 2000
PING_SECONDS = 15.0
# Browser tabs one user may hold open on the stream, and streams in all.
PER_USER = 20
TOTAL = 2000
RETRY_MS = 2000


def encode(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Subscriber:
    def __init__(self, user: str) -> None:
        self.user = user
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_EVENTS)
        self.dropped = asyncio.Event()


class EventHub:
    """Fans the live state's events out to the open ``/api/events`` streams."""

    def __init__(self, per_user: int = PER_USER, total: int = TOTAL) -> None:
        self.per_user, self.total = per_user, total
        self._subs: set[Subscriber] = set()
        self._per_user: Counter[str] = Counter()
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, user: str) -> Subscriber:
        if len(self._subs) >= self.total:
            raise TooManyRequests("too many event streams are open", code="too_many_streams")
        if self._per_user[user] >= self.per_user:
            raise TooManyRequests(
                f"you already have {self.per_user} event streams open; close a tab",
                code="too_many_streams",
                retry_after=5,
            )
        sub = Subscriber(user)
        self._subs.add(sub)
        self._per_user[user] += 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subs:
            self._subs.discard(sub)
            self._per_user[sub.user] -= 1
            if self._per_user[sub.user] <= 0:
                del self._per_user[sub.user]

    def publish(self, event: str, data: dict[str, Any]) -> None:
        if not self._subs:
            return
        self.published += 1
        chunk = encode(event, data)
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(chunk)
            except asyncio.QueueFull:
                sub.dropped.set()
                self.unsubscribe(sub)


HUB_KEY = web.AppKey("archnest_event_hub", EventHub)

SSE_EVENTS = Content(
    "text/event-stream",
    {"type": "string"},
    "Server-sent events. `event: hello` first (reload what you show: changes before it "
    "were not sent); `event: container` with "
    '`{"host_id","id","name","state","status","action"}` (action as Docker names it: '
    "create, start, die, pause, unpause, health_status, destroy, ...; `update` when a "
    'resync found a change); `event: host` with `{"host_id","status","error"}`; '
    "`event: end` when the server shuts down or the client fell too far behind "
    "(reconnect).",
)


@operation(
    "Live changes of containers and hosts (server-sent events)",
    responses={200: SSE_EVENTS},
    errors=(429,),
)
async def events_stream(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    user = current_user(request)
    sub = hub.subscribe(user.username if user else "")
    closing = request.app[STREAMS_KEY].closing
    try:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await resp.prepare(request)
        await resp.write(f"retry: {RETRY_MS}\n".encode() + encode("hello", {}))
        waits = {
            asyncio.ensure_future(closing.wait()),
            asyncio.ensure_future(sub.dropped.wait()),
        }
        try:
            while not closing.is_set() and not sub.dropped.is_set():
                getter = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait(
                    {getter, *waits}, timeout=PING_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    if not done:
                        # A comment line: keeps proxies from timing out, notices a gone client.
                        await resp.write(b": ping\n\n")
                    continue
                chunks = [getter.result()]
                while not sub.queue.empty():
                    chunks.append(sub.queue.get_nowait())
                await resp.write(b"".join(chunks))
            reason = "server shutting down" if closing.is_set() else "fell behind; reconnect"
            await resp.write(encode("end", {"reason": reason}))
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away
        finally:
            for w in waits:
                w.cancel()
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp
    finally:
        hub.unsubscribe(sub)


def setup_event_routes(app: web.Application) -> None:
    app[HUB_KEY] = EventHub()
    app.router.add_get("/api/events", events_stream)
