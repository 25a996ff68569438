"""HTTP routes: the token-gated ingest and the viewer read endpoints (enrollments:
:mod:`.enroll_routes`)."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from archnest import (
    ApiError,
    BadRequest,
    ContainerSummary,
    Forbidden,
    NotFound,
    Stats,
    Unauthorized,
    add_container_routes,
    operation,
    plugin_settings,
    public,
    publish_containers,
    read_body_limited,
    record_stats,
)
from pydantic import BaseModel

from .enroll_routes import setup_enroll_routes
from .enrollments import ENROLLMENTS_KEY
from .jsonio import dumps, loads
from .normalise import ContainerCache
from .payload import HOST_RE, AgentReport, ReportInvalid, host_hint, split_report
from .settings import AgentSettings
from .source import STORE_KEY, AgentHostSource, host_entry
from .store import HostRow, utc_naive
from .worker import WORKER_KEY, IngestWorker, WorkerGone, raise_answer

log = logging.getLogger("archnest.docker_agent")

PREFIX = "/api/agents/docker"
CACHE_KEY = web.AppKey("archnest_docker_agent_containers", ContainerCache)


class AgentHost(BaseModel):
    host: str
    last_report_at: str | None
    stale: bool
    container_count: int
    agent_version: str | None
    running_count: int
    reported_at: str | None
    report_count: int


class AgentHostDetail(AgentHost):
    engine: dict[str, Any]
    host_facts: dict[str, Any]


@public  # not a user route: the agent token below is its own authentication
@operation(
    "An agent's snapshot of its host",
    description="Validated, normalised, masked and stored; the host's previous report "
    "stays when this one is refused. The shared token (ARCHNEST_AGENT_TOKEN) may report "
    "any host; a per-host token (an enrollment) only its own host (403 otherwise).",
    request=AgentReport,
    responses={204: None},
    errors=(400, 401, 403, 413, 503),
    own_auth="agentToken",
)
async def ingest_report(request: web.Request) -> web.Response:
    """POST /api/agents/docker/report: validate, normalise, mask, upsert; 204."""
    settings = plugin_settings(request.app, AgentSettings)
    try:
        # None: the shared token, any host; else the one host this token is enrolled for.
        enrolled = await request.app[ENROLLMENTS_KEY].authorise(
            request.headers.get("Authorization", ""), settings.token
        )
    except Unauthorized:
        # Worth an operator's attention (a misconfigured or revoked agent, or probing);
        # the presented value is never logged.
        log.warning("agent report refused: bad or missing token from %s", request.remote)
        raise
    # Bounded read: Content-Length is checked first, then the stream is counted.
    body = await read_body_limited(request, settings.max_report_bytes)
    worker = request.app.get(WORKER_KEY)
    if worker is not None:
        return await _ingest_in_worker(request, worker, body, enrolled)
    stats: dict[str, Any] = {}
    try:
        with no_gc_pauses():
            row, summaries = report_row(body, request.app[CACHE_KEY], enrolled, stats)
            shown_changed = row.pop("shown_changed")
    except ReportInvalid as exc:
        raise BadRequest(str(exc), code="invalid_report") from None
    del body
    try:
        await request.app[STORE_KEY].save(row)
    except BaseException:
        # Not stored: the host's next report must not count as "unchanged" against
        # containers that never reached the database or the subscribers.
        request.app[CACHE_KEY].forget(row["host"])
        raise
    _announce(request.app, row["host"], summaries if shown_changed else None, summaries, stats)
    return web.Response(status=204)


def _announce(
    app: web.Application,
    host: str,
    shown: list[ContainerSummary] | None,
    rows: list[ContainerSummary],
    stats: dict[str, Any] | Callable[[], dict[str, Any]],
) -> None:
    """After a report is stored: subscribers of /api/events hear what changed since the
    host's last report (an agent host has no event stream of its own), ``shown`` being
    None when no container's state, name or status changed; and the running
    containers' samples go to the stats history, built only when kept (at most once
    per ARCHNEST_STATS_INTERVAL per host). ``stats``: the samples by container id, or
    a function reading them."""
    host_id = f"{AgentHostSource.name}:{host}"
    if shown is not None:
        publish_containers(app, host_id, shown)

    def samples() -> dict[str, tuple[str, Stats]]:
        by_id = stats() if callable(stats) else stats
        return {
            c.id: (c.name, Stats.model_construct(**by_id[c.id]))
            for c in rows
            if c.state == "running" and by_id.get(c.id)
        }

    record_stats(app, host_id, samples)


async def _ingest_in_worker(
    request: web.Request, worker: IngestWorker, body: bytes, enrolled: str | None
) -> web.Response:
    """The ingest with ARCHNEST_AGENT_INGEST_WORKER: the worker process validates and
    stores; the same answers, events and stats history as in-process."""
    try:
        answer = await worker.report(body, enrolled)
    except WorkerGone:
        raise ApiError(
            "the agent ingest worker restarted before it stored this report; send it again",
            code="ingest_worker_restarted",
            status=503,
        ) from None
    if answer[0] != "ok":
        if answer[0] == "api" and answer[1] == 403:
            log.warning("agent report refused: a token of %r reported as another host", enrolled)
        raise_answer(answer)
    host, stats_json, listed = answer[1:4]
    shown = None
    if listed is not None:
        shown = worker.shown[host] = [ContainerSummary(**s) for s in listed]
    _announce(request.app, host, shown, worker.shown.get(host, []), lambda: loads(stats_json))
    return web.Response(status=204)


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Suspend the cyclic garbage collector for one report's parse and normalisation.

    Those build thousands of acyclic objects (freed by reference counting as soon as
    ``report_row`` returns); while they are alive, every young-generation collection
    would walk them and promote them, which under load cost more than the parsing
    itself. Synchronous code only, so nothing else runs meanwhile; the previous state
    is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def report_row(
    body: bytes,
    cache: ContainerCache,
    enrolled: str | None = None,
    stats_out: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[ContainerSummary]]:
    """Validate, normalise and mask one report into its table row (plain strings) and
    the containers' list rows. Besides the columns, the row says whether the containers
    changed since the host's previous report (``containers_changed``: what the store
    writes) and whether any container's state, name or status did (``shown_changed``:
    what the live view announces).

    ``enrolled``: the one host the request's token may report (None: any). Checked
    right after the top-level fields, before any container is looked at, so a token
    cannot touch another host's cached containers. A separate function on purpose:
    the intermediates die when it returns, before the handler waits for the commit.
    """
    # The host's previous containers guide the reading (the host named in the body, a
    # hint only: the result does not depend on it, see split_report).
    split = split_report(body, cache.previous(host_hint(body)))
    report = split.header
    if enrolled is not None and report.host != enrolled:
        log.warning("agent report refused: a token of %r reported as another host", enrolled)
        raise Forbidden(
            f"this agent token is enrolled for host {enrolled!r} and may report only as it",
            code="host_mismatch",
        )
    containers = cache.normalise(report.host, split.containers)
    if stats_out is not None:  # the samples by container id, for the stats history
        stats_out.update(report.stats)
    row = {
        "host": report.host,
        "agent_version": report.agent_version,
        "schema_version": report.schema_,
        "reported_at": utc_naive(report.reported_at),
        "received_at": utc_naive(),
        "container_count": len(split.containers),
        "running_count": containers.running_count,
        "report_count": 1,
        "payload_bytes": len(body),
        "engine_json": dumps(report.engine),
        "host_facts_json": dumps(report.host_facts),
        "stats_json": dumps(report.stats),
        # The same str object as the previous report's when nothing changed: the store
        # then keeps the host's stored containers as they are.
        "containers_json": containers.json,
        "containers_changed": containers.changed,
        "shown_changed": containers.shown_changed,
    }
    return row, containers.summaries


@operation("Hosts that reported", responses={200: list[AgentHost]})
async def list_agent_hosts(request: web.Request) -> web.Response:
    """GET /api/agents/docker/hosts."""
    stale = plugin_settings(request.app, AgentSettings).stale_seconds
    rows = await request.app[STORE_KEY].hosts()
    return web.json_response([host_entry(r, stale) for r in rows])


@operation(
    "One reporting host with its engine and host facts",
    responses={200: AgentHostDetail},
    errors=(400,),
)
async def get_agent_host(request: web.Request) -> web.Response:
    """GET /api/agents/docker/hosts/{host}: the host entry plus engine and host facts."""
    host = _host(request)
    report = await request.app[STORE_KEY].report(host)
    if report is None:
        raise NotFound(f"no report from agent host {host!r}", code="unknown_host")
    row = HostRow(**{k: report[k] for k in HostRow.__dataclass_fields__})
    entry = host_entry(row, plugin_settings(request.app, AgentSettings).stale_seconds)
    entry["engine"] = loads(report["engine_json"])
    entry["host_facts"] = loads(report["host_facts_json"])
    return web.json_response(entry)


@operation(
    "Forget a decommissioned host (it comes back with its next report)",
    responses={204: None},
    errors=(400,),
)
async def forget_agent_host(request: web.Request) -> web.Response:
    """DELETE /api/agents/docker/hosts/{host} (admin, by the route table): drop a
    decommissioned host; a host whose agent still runs comes back with its next report."""
    host = _host(request)
    request.app[CACHE_KEY].forget(host)
    worker = request.app.get(WORKER_KEY)
    if worker is not None:
        await worker.forget(host)
    if not await request.app[STORE_KEY].forget(host):
        raise NotFound(f"no report from agent host {host!r}", code="unknown_host")
    return web.Response(status=204)


def _host(request: web.Request) -> str:
    host = request.match_info["host"]
    if not HOST_RE.fullmatch(host):
        raise BadRequest("invalid agent host name", code="invalid_host")
    return host


def setup_routes(app: web.Application) -> None:
    app[CACHE_KEY] = ContainerCache()
    setup_enroll_routes(app)
    app.router.add_post(f"{PREFIX}/report", ingest_report)
    app.router.add_get(f"{PREFIX}/hosts", list_agent_hosts)
    app.router.add_get(PREFIX + "/hosts/{host}", get_agent_host)
    app.router.add_delete(PREFIX + "/hosts/{host}", forget_agent_host)
    # containers, containers/{ref} (and logs/actions, which answer 501: read-only)
    add_container_routes(app, PREFIX + "/hosts/{host}", AgentHostSource.name)
