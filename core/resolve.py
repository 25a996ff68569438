"""Host resolution: one resolver behind every URL tree, and the per-host timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .errors import HostTimeout, NotFound
from .keys import SETTINGS_KEY, SOURCES_KEY
from .sources import HostSource

SourceResolver = Callable[[web.Request], Awaitable[tuple[HostSource, str]]]


def _sources(app: web.Application) -> dict[str, HostSource]:
    return app[SOURCES_KEY]


class KnownHosts:
    """A few seconds of memory of hosts found to exist: every request names a host, and
    a source's lookup is a database query. Only hits are kept, so a new host works at
    once; a host deleted elsewhere is refused by its source a few seconds later."""

    def __init__(self, ttl: float = 3.0, max_entries: int = 10_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._seen: dict[str, float] = {}

    def fresh(self, host_id: str) -> bool:
        seen = self._seen.get(host_id)
        return seen is not None and time.monotonic() - seen < self.ttl

    def remember(self, host_id: str) -> None:
        if len(self._seen) >= self.max_entries:
            self._seen.clear()
        self._seen[host_id] = time.monotonic()


KNOWN_HOSTS_KEY = web.AppKey("archnest_known_hosts", KnownHosts)


async def resolve_host(app: web.Application, source_name: str, key: str) -> tuple[HostSource, str]:
    """The one resolver behind every URL tree: the source and the host key, or a 404
    ``unknown_host`` (unknown source, empty key, or a host the source does not have)."""
    source = _sources(app).get(source_name)
    if source is None or not key:
        raise NotFound(f"unknown host {source_name}:{key}", code="unknown_host")
    known = app[KNOWN_HOSTS_KEY]
    host_id = source.host_id(key)
    if not known.fresh(host_id):
        await with_timeout(app, source.get_host(key), "host lookup")
        known.remember(host_id)
    return source, key


async def resolve_host_id(app: web.Application, host_id: str) -> tuple[HostSource, str]:
    """``resolve_host`` for a unified host id, ``"source:key"``."""
    source_name, _, key = host_id.partition(":")
    return await resolve_host(app, source_name, key)


def source_resolver(source_name: str, placeholder: str = "id") -> SourceResolver:
    """The resolver of a per-source URL tree (``/api/docker/hosts/{id}/...``): the key
    from the path placeholder, or from ``?host=`` (the exec socket)."""

    async def resolve(request: web.Request) -> tuple[HostSource, str]:
        key = request.match_info.get(placeholder) or request.query.get("host", "")
        return await resolve_host(request.app, source_name, key)

    return resolve


async def with_timeout(app: web.Application, coro: Awaitable, what: str):  # type: ignore[no-untyped-def]
    """Run a host call under the per-host timeout; a timeout becomes a 504."""
    timeout = app[SETTINGS_KEY].host_timeout
    try:
        return await asyncio.wait_for(coro, timeout)
    except TimeoutError as exc:
        raise HostTimeout(f"{what}: no answer within {timeout:g}s") from exc


async def _unified_resolver(request: web.Request) -> tuple[HostSource, str]:
    host_id = request.match_info.get("host_id") or request.query.get("host", "")
    return await resolve_host_id(request.app, host_id)
