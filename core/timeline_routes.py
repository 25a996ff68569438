"""``GET .../containers/{ref}/timeline``: a container's state changes, added to every
container URL tree by ``add_container_routes``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .containers import validate_ref
from .errors import BadRequest
from .keys import DB_KEY
from .openapi import Param, operation
from .resolve import SourceResolver
from .stats_routes import container_id
from .timeline import DEFAULT_LIMIT, MAX_LIMIT, TimelineEntry, entries, known_ids


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "")
    if not raw:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


def make_timeline_handler(
    resolve: SourceResolver,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    @operation(
        "A container's timeline (start, die with exit code, restart, OOM kill, health)",
        description=(
            "Newest first. From the engine's events on docker and ssh hosts (the engine's "
            "own times), from the differences between reports on agent hosts (no OOM "
            "kills; as fine as the reporting interval). Kept "
            "`ARCHNEST_TIMELINE_RETENTION_DAYS`. `ref` is a name or an id; a name means "
            "the container that has it now, and a removed container's timeline stays "
            "readable by its id or last name."
        ),
        query=(
            Param(
                "limit",
                f"At most this many entries, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT}).",
                type="integer",
            ),
        ),
        responses={200: list[TimelineEntry]},
        errors=(400, 404),
    )
    async def timeline(request: web.Request) -> web.Response:
        ref = validate_ref(request.match_info["ref"])
        limit = _limit(request)
        source, key = await resolve(request)
        cid = await container_id(request.app, source, key, ref, stored=known_ids)
        rows = await entries(request.app[DB_KEY].engine, source.host_id(key), cid, limit)
        return web.json_response(rows)

    return timeline


__all__ = ["make_timeline_handler"]
