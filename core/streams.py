"""Live streams (followed logs, terminals): bounds per user and per host, and their end.

A followed log or a terminal holds something on the host for as long as it is open (an
Engine API connection, an SSH channel, a remote process). Each one takes a slot here
first; over a bound the request is refused at once with a 429, never queued. At
shutdown every open stream is told to end, and terminals are closed (ending their
remote process) before the sources and their pools close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from .errors import TooManyRequests

log = logging.getLogger("archnest.streams")

StreamKind = Literal["follow", "terminal"]
Closer = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class StreamLimits:
    """How many live streams of each kind one user, and one host, may hold at once."""

    follows_per_user: int = 20
    follows_per_host: int = 50
    terminals_per_user: int = 5
    terminals_per_host: int = 10

    def bound(self, kind: StreamKind, scope: Literal["user", "host"]) -> int:
        return int(getattr(self, f"{kind}s_per_{scope}"))


class StreamSlot:
    """One open stream's place in the registry; ``release()`` is idempotent."""

    def __init__(self, registry: StreamRegistry, kind: StreamKind, user: str, host_id: str):
        self._registry, self.kind, self.user, self.host_id = registry, kind, user, host_id
        self.closer: Closer | None = None
        self._released = False

    def on_shutdown(self, closer: Closer) -> None:
        """What ends this stream when the server shuts down (e.g. close the WebSocket)."""
        self.closer = closer

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._registry._release(self)

    def __enter__(self) -> StreamSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class StreamRegistry:
    """Counts live streams per (kind, user) and (kind, host); ends them all at shutdown."""

    def __init__(self, limits: StreamLimits | None = None) -> None:
        self.limits = limits or StreamLimits()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._open: set[StreamSlot] = set()
        # Set once the server begins to shut down; long-lived handlers watch it.
        self.closing = asyncio.Event()

    def count(
        self, kind: StreamKind, *, user: str | None = None, host_id: str | None = None
    ) -> int:
        if user is not None:
            return self._counts[(kind, "user", user)]
        if host_id is not None:
            return self._counts[(kind, "host", host_id)]
        return sum(1 for s in self._open if s.kind == kind)

    def acquire(self, kind: StreamKind, user: str, host_id: str) -> StreamSlot:
        """A slot for a new stream, or a 429 that says which bound is full."""
        if self.closing.is_set():
            raise TooManyRequests("the server is shutting down", code="shutting_down")
        what = "log follows" if kind == "follow" else "terminals"
        per_user = self.limits.bound(kind, "user")
        if self._counts[(kind, "user", user)] >= per_user:
            raise TooManyRequests(
                f"you already have {per_user} open {what}; close one first",
                code=f"too_many_{kind}s",
                retry_after=5,
            )
        per_host = self.limits.bound(kind, "host")
        if self._counts[(kind, "host", host_id)] >= per_host:
            raise TooManyRequests(
                f"host {host_id} already has {per_host} open {what}; try again later",
                code=f"too_many_{kind}s",
                retry_after=5,
            )
        slot = StreamSlot(self, kind, user, host_id)
        self._counts[(kind, "user", user)] += 1
        self._counts[(kind, "host", host_id)] += 1
        self._open.add(slot)
        return slot

    def _release(self, slot: StreamSlot) -> None:
        self._open.discard(slot)
        for key in ((slot.kind, "user", slot.user), (slot.kind, "host", slot.host_id)):
            self._counts[key] -= 1
            if self._counts[key] <= 0:
                del self._counts[key]

    async def shutdown(self, seconds: float) -> None:
        """Tell every stream to end and run the closers, all within ``seconds``."""
        self.closing.set()
        closers = [s.closer for s in list(self._open) if s.closer is not None]
        if not closers:
            return
        log.info("shutdown: ending %d open streams", len(self._open))
        tasks = [asyncio.ensure_future(c()) for c in closers]
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        if pending:
            log.warning("shutdown: %d streams did not end within %gs", len(pending), seconds)


__all__ = ["StreamKind", "StreamLimits", "StreamRegistry", "StreamSlot"]
