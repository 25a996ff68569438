"""Unified host and container routes over every ``HostSource``.

``add_container_routes`` is also what each source plugin uses for its own prefix
(``/api/docker/hosts/{id}/...``), so list/detail/logs/actions/exec behave identically
everywhere and live in one place.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from .container_routes import ALL_PARAM, add_container_routes, pydantic_json_response
from .containers import ContainerSummary
from .db import DatabaseUnavailable
from .errors import ApiError
from .event_hub import setup_event_routes
from .keys import SETTINGS_KEY
from .listing import LISTING_QUERY, parse_api_params
from .listing import run as run_listing
from .live import LIVE_KEY
from .openapi import Param, operation
from .query import flag
from .resolve import (
    KNOWN_HOSTS_KEY,
    KnownHosts,
    _sources,
    _unified_resolver,
    with_timeout,
)
from .sources import HostInfo, HostSource

log = logging.getLogger("archnest.hosts")


async def _guarded(app: web.Application, host: HostInfo, coro: Awaitable, what: str):  # type: ignore[no-untyped-def]
    """Run one host call; a failure becomes that host's status and error, never raises."""
    try:
        result = await with_timeout(app, coro, host.name)
    except ApiError as exc:
        host.status, host.error = "error", exc.message
        return None
    except Exception as exc:  # a plugin bug must stay that host's problem
        log.warning("%s of %s failed: %r", what, host.id, exc)
        host.status, host.error = "error", f"{type(exc).__name__}: {exc}"
        return None
    if host.status == "unknown":
        host.status = "ok"
    return result


def _key(host: HostInfo) -> str:
    return host.id.partition(":")[2]


async def _probe(app: web.Application, source: HostSource, host: HostInfo) -> HostInfo:
    live = app.get(LIVE_KEY)
    state = live.state_for(source, host.id) if live is not None else None
    if state is not None:  # watched: its event stream says whether it answers
        await live.describe(state, host)  # type: ignore[union-attr]
    elif host.status not in ("error", "stale"):
        await _guarded(app, host, source.probe(_key(host)), "probe")
    return host


async def _hosts_of(app: web.Application, source: HostSource) -> list[HostInfo]:
    try:
        return await with_timeout(app, source.list_hosts(), f"source {source.name}")
    except DatabaseUnavailable:
        raise  # the whole answer is unknown: a 503, not an empty list that looks real
    except Exception as exc:
        log.warning("source %s could not list hosts: %r", source.name, exc)
        return []


def _bounded(app: web.Application) -> Callable[[Awaitable], Awaitable]:
    """Wrap host calls of one fan-out so at most ``fanout_concurrency`` run at once."""
    gate = asyncio.Semaphore(app[SETTINGS_KEY].fanout_concurrency)

    async def run(coro: Awaitable):  # type: ignore[no-untyped-def]
        try:
            async with gate:
                return await coro
        finally:
            # Cancelled while waiting for the gate (the client left): the call never
            # started; close it so it is released quietly (a no-op once it ran).
            if inspect.iscoroutine(coro):
                coro.close()

    return run


async def list_all_hosts(app: web.Application, probe: bool = True) -> list[HostInfo]:
    """Every host of every source, probed concurrently; failures stay per host."""
    bounded = _bounded(app)

    async def hosts_of(source: HostSource) -> list[HostInfo]:
        hosts = await _hosts_of(app, source)
        if not probe:
            return hosts
        return list(await asyncio.gather(*(bounded(_probe(app, source, h)) for h in hosts)))

    groups = await asyncio.gather(*(hosts_of(s) for s in _sources(app).values()))
    return [h for group in groups for h in group]


async def list_all_containers(
    app: web.Application,
    *,
    all: bool = False,
    sources: set[str] | None = None,
    host_ids: set[str] | None = None,
) -> tuple[list[HostInfo], list[ContainerSummary]]:
    """Containers of many hosts in one call. Watched hosts (sources with events) answer
    from the live cache with their status and data age; the others are listed
    concurrently, the listing doubling as the health check. A dead host is its own
    error and the others still list."""
    if host_ids is not None:
        # Only the sources the chosen hosts belong to: a source's host list is a database
        # query, and this request is the "all hosts" page's refresh.
        named = {h.partition(":")[0] for h in host_ids}
        sources = named if sources is None else sources & named
    chosen = [s for s in _sources(app).values() if sources is None or s.name in sources]
    groups = await asyncio.gather(*(_hosts_of(app, s) for s in chosen))
    pairs = [
        (source, host)
        for source, hosts in zip(chosen, groups, strict=True)
        for host in hosts
        if host_ids is None or host.id in host_ids
    ]
    bounded = _bounded(app)
    live = app.get(LIVE_KEY)

    async def rows(source: HostSource, host: HostInfo) -> list[ContainerSummary] | None:
        state = live.state_for(source, host.id) if live is not None else None
        if state is not None:  # watched: the live cache answers, never the host
            return await live.rows(state, host, all)  # type: ignore[union-attr]
        return await bounded(
            _guarded(app, host, source.list_containers(_key(host), all=all), "list")
        )

    listed = await asyncio.gather(*(rows(source, host) for source, host in pairs))
    containers = [c for items in listed for c in (items or [])]
    return [host for _, host in pairs], containers


class _Index(BaseModel):
    hosts: list[HostInfo]
    containers: list[ContainerSummary]
    # Only with a listing parameter (q, sort, limit, ...): the matches before paging.
    total: int | None = None


_INDEX = TypeAdapter(_Index)


@operation(
    "Every host of every source, with its status and capabilities",
    query=(Param("noprobe", "Do not contact the hosts: stored facts only.", type="boolean"),),
    responses={200: list[HostInfo]},
)
async def hosts_index(request: web.Request) -> web.Response:
    hosts = await list_all_hosts(request.app, probe=not flag(request, "noprobe"))
    return web.json_response([h.model_dump(mode="json") for h in hosts])


@operation(
    "Containers of many hosts in one answer, with each host's status and error",
    query=(
        ALL_PARAM,
        Param("source", "Only hosts of these sources.", repeated=True),
        Param("host", "Only these host ids.", repeated=True),
        *LISTING_QUERY,
    ),
    responses={200: _Index},
    errors=(400,),
)
async def containers_index(request: web.Request) -> web.Response:
    """``GET /api/containers[?all=1][&source=ssh][&host=ssh:1&host=...]``: every chosen
    host's containers in one answer, with each host's status and error.

    Any of ``q``, ``project``, ``state``, ``sort``, ``order``, ``limit``, ``offset``
    filters, sorts (default: by host) and pages the containers server-side and adds
    ``total``, the matches before paging; without them the answer is every container
    in the hosts' own order, without ``total``."""
    listing = parse_api_params(request.query)  # a bad parameter is a 400 before any host
    sources = set(request.query.getall("source", [])) or None
    host_ids = set(request.query.getall("host", [])) or None
    hosts, containers = await list_all_containers(
        request.app, all=flag(request, "all"), sources=sources, host_ids=host_ids
    )
    if listing is None:
        body = _Index.model_construct(hosts=hosts, containers=containers)
        return web.Response(
            body=_INDEX.dump_json(body, exclude={"total"}),
            content_type="application/json",
            charset="utf-8",
        )
    page = run_listing(containers, listing, {h.id: h.name for h in hosts})
    return pydantic_json_response(
        _INDEX, _Index.model_construct(hosts=hosts, containers=page.rows, total=page.total)
    )


def setup_unified_routes(app: web.Application) -> None:
    app[KNOWN_HOSTS_KEY] = KnownHosts()
    setup_event_routes(app)
    app.router.add_get("/api/hosts", hosts_index)
    app.router.add_get("/api/containers", containers_index)
    add_container_routes(app, "/api/hosts/{host_id}", _unified_resolver, exec_path="/api/exec")
