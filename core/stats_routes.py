"""``GET .../containers/{ref}/stats/history``: a container's stats over a range, added
to every container URL tree by ``add_container_routes``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from .containers import validate_ref
from .errors import BadRequest, NotFound
from .keys import DB_KEY
from .live import LIVE_KEY
from .openapi import Param, operation
from .resolve import SourceResolver, with_timeout
from .sources import HostSource
from .stats_history import RANGES, history, known_ids


class StatsPoint(BaseModel):
    t: str
    cpu_percent: float | None = None
    mem_usage_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    block_read_bytes: int | None = None
    block_write_bytes: int | None = None


class StatsHistory(BaseModel):
    """Oldest first. Network and block I/O are the container's cumulative counters."""

    points: list[StatsPoint]


def _match(ref: str, cid: str, name: str) -> bool:
    return cid == ref or name == ref or (len(ref) >= 4 and cid.startswith(ref))


StoredIds = Callable[[AsyncEngine, str, str], Awaitable[str | None]]


async def container_id(
    app: web.Application,
    source: HostSource,
    key: str,
    ref: str,
    stored: StoredIds = known_ids,
) -> str:
    """The id of the container ``ref`` (name or id): from the live cache, else a listing
    of the host, else what is stored of it (``stored``: the stats history by default; a
    container that is gone keeps its history).
    A name is resolved to the container that has it now: a recreated container (same
    name, new id) starts a new history."""
    host_id = source.host_id(key)
    live = app.get(LIVE_KEY)
    state = live.hosts.get(host_id) if live is not None else None
    if state is not None and state.containers:
        candidates = [(c.id, c.name) for c in state.containers.values()]
    else:
        try:
            listed = await with_timeout(app, source.list_containers(key, all=True), "list")
        except Exception:  # the host is away: the stored history still answers
            listed = []
        candidates = [(c.id, c.name) for c in listed]
    for cid, name in candidates:
        if _match(ref, cid, name.lstrip("/")):
            return cid
    found = await stored(app[DB_KEY].engine, host_id, ref)
    if found is None:
        raise NotFound(f"no container {ref!r} on host {host_id!r}", code="unknown_container")
    return found


def make_history_handler(
    resolve: SourceResolver,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    @operation(
        "A container's stats history (CPU, memory, network, block I/O)",
        description=(
            "Sampled every `ARCHNEST_STATS_INTERVAL` seconds on docker and ssh hosts, "
            "taken from reports on agent hosts. `1h` and `24h` read raw samples (kept 24 "
            "hours), `7d` 5-minute means (kept 7 days), `30d` hourly means (kept 90 days); "
            "at most 1000 points, thinned evenly. `ref` is a name or an id; a name means "
            "the container that has it now."
        ),
        query=(Param("range", "How far back (default 1h).", enum=tuple(RANGES)),),
        responses={200: StatsHistory},
        errors=(400, 404),
    )
    async def stats_history(request: web.Request) -> web.Response:
        ref = validate_ref(request.match_info["ref"])
        range_ = request.query.get("range", "1h")
        if range_ not in RANGES:
            raise BadRequest(
                f"range must be one of {', '.join(RANGES)}", code="invalid_range", field="range"
            )
        source, key = await resolve(request)
        cid = await container_id(request.app, source, key, ref)
        points = await history(request.app[DB_KEY].engine, source.host_id(key), cid, range_)
        return web.json_response({"points": points})

    return stats_history


__all__ = ["StatsHistory", "StatsPoint", "container_id", "make_history_handler"]
