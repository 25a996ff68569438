"""Prometheus metrics: ``GET /metrics`` (docs/metrics.md lists every series).

Fleet series (containers and hosts) come from a custom collector that reads the current
state at scrape time: nothing is kept per container between scrapes, so a removed
container's series simply stop. The whole exposition is cached for ``CACHE_SECONDS``,
so frequent or concurrent scrapes cost one read of the fleet. The app's own series
(request latency, ingest and event counters) live in a registry of this app.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .auth import public
from .containers import ContainerSummary, Stats
from .event_hub import HUB_KEY
from .hosts import list_all_containers
from .keys import SETTINGS_KEY, SOURCES_KEY
from .live import LIVE_KEY
from .openapi import Content, operation
from .sources import HostInfo

log = logging.getLogger("archnest.metrics")

CACHE_SECONDS = 2.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Request latency buckets: a list answered from the cache is milliseconds, a host call
# up to the host timeout (seconds); streams (logs, SSE) land in +Inf.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HEALTH_VALUES = {"healthy": 1.0, "unhealthy": 0.0}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _version() -> str:
    from . import __version__

    return __version__


class FleetCollector(Collector):
    """Yields the families of the last gathered fleet snapshot (see :func:`gather`)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class AppCollector(Collector):
    """Counters the core already keeps elsewhere, read at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "archnest_build_info", "The running ArchNest version (always 1).", labels=["version"]
        )
        info.add_metric([_version()], 1.0)
        yield info
        hub = self.app.get(HUB_KEY)
        if hub is not None:
            yield GaugeMetricFamily(
                "archnest_event_subscribers",
                "Open GET /api/events streams.",
                value=float(hub.subscribers),
            )
            yield CounterMetricFamily(
                "archnest_events_published",
                "Events published to the subscribers of GET /api/events.",
                value=float(hub.published),
            )
        reports = CounterMetricFamily(
            "archnest_agent_reports",
            "Reports stored for hosts without an event stream (agents), by source.",
            labels=["source"],
        )
        live = self.app.get(LIVE_KEY)
        for source, count in sorted(getattr(live, "reports", {}).items()):
            reports.add_metric([source], float(count))
        yield reports


class Metrics:
    """The app's registry, its request histogram and the cached exposition."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Histogram(
            "archnest_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status class.",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.fleet = FleetCollector()
        self.registry.register(self.fleet)
        self.registry.register(AppCollector(app))
        self._body = b""
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    async def exposition(self) -> bytes:
        async with self._lock:  # concurrent scrapes share one read of the fleet
            if time.monotonic() - self._at >= CACHE_SECONDS:
                self.fleet.families = await gather(self.app)
                self._body = generate_latest(self.registry)
                self._at = time.monotonic()
            return self._body


METRICS_KEY = web.AppKey("archnest_metrics", Metrics)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Observe every request's duration under its route template (never the raw path:
    the label's values stay as few as the routes)."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics = request.app.get(METRICS_KEY)
        if metrics is not None:
            route = request.match_info.route
            resource = route.resource if route is not None else None
            template = resource.canonical if resource is not None else "unmatched"
            metrics.requests.labels(request.method, template, f"{status // 100}xx").observe(
                time.perf_counter() - start
            )


# ---- the fleet ---------------------------------------------------------------------


def _health(status: str) -> str | None:
    for word in ("healthy", "unhealthy"):
        if f"({word})" in status:
            return word
    return None


# Where the stats collector keeps its latest samples (the module may be absent: then
# CPU and memory come from what the sources store, i.e. agent reports).
SAMPLE_MODULES = (".stats_collector", ".stats_history")
# A sample older than this many collection intervals is not shown as current.
MAX_SAMPLE_INTERVALS = 3


async def _stats_samples(app: web.Application) -> dict[tuple[str, str], Stats]:
    """The stats collector's recent sample per container, when that module exists."""
    for name in SAMPLE_MODULES:
        try:
            module = importlib.import_module(name, __package__)
        except ModuleNotFoundError:
            continue
        latest = getattr(module, "latest_samples", None)
        if latest is not None:
            break
    else:
        return {}
    found = latest(app)
    if inspect.isawaitable(found):
        found = await found
    interval = float(getattr(app[SETTINGS_KEY], "stats_interval", 30.0))
    oldest = time.time() - MAX_SAMPLE_INTERVALS * max(interval, 10.0)
    out: dict[tuple[str, str], Stats] = {}
    for key, (t, sample) in (found or {}).items():
        taken = t.timestamp() if isinstance(t, datetime) else float(t)
        if taken >= oldest:
            out[key] = sample
    return out


async def _reported(app: web.Application, hosts: list[HostInfo]) -> dict[tuple[str, str], Any]:
    """Details a source already stores (an agent's last report: its stats sample and
    restart count), read once per host. Sources that store nothing are skipped."""
    sources = app[SOURCES_KEY]
    found: dict[tuple[str, str], Any] = {}

    async def one(host: HostInfo) -> None:
        source = sources.get(host.source)
        read = getattr(source, "containers", None)
        if read is None or not inspect.iscoroutinefunction(read):
            return
        try:
            items = await read(host.id.partition(":")[2])
        except Exception:  # a host gone since it was listed: no details, nothing else
            return
        for item in items:
            if isinstance(item, dict) and "id" in item:
                found[(host.id, item["id"])] = item

    await asyncio.gather(*(one(h) for h in hosts))
    return found


def _data_age(host: HostInfo, now: float) -> float:
    if host.data_age is not None:
        return host.data_age
    last = host.details.get("last_report_at")
    if isinstance(last, str):
        try:
            return max(0.0, now - datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return 0.0
    return 0.0  # read just now


async def gather(app: web.Application) -> list[Metric]:
    """The fleet's families, read now (live cache for watched hosts, storage for agents)."""
    hosts, containers = await list_all_containers(app, all=True)
    samples = await _stats_samples(app)
    reported = await _reported(app, hosts)
    return list(fleet_families(hosts, containers, samples, reported, time.time()))


def fleet_families(
    hosts: list[HostInfo],
    containers: list[ContainerSummary],
    samples: dict[tuple[str, str], Stats],
    reported: dict[tuple[str, str], Any],
    now: float,
) -> Iterator[Metric]:
    labels = ["host_id", "container"]
    up = GaugeMetricFamily(
        "archnest_host_up",
        "1 when the host answered (or reports in time), else 0.",
        labels=["host_id", "source"],
    )
    age = GaugeMetricFamily(
        "archnest_host_data_age_seconds",
        "Age of the container data shown for the host (0: read just now).",
        labels=["host_id"],
    )
    per_state = GaugeMetricFamily(
        "archnest_host_containers",
        "Containers of the host by state.",
        labels=["host_id", "state"],
    )
    state = GaugeMetricFamily(
        "archnest_container_state",
        "1 for the container's current state (one series).",
        labels=[*labels, "state"],
    )
    running = GaugeMetricFamily(
        "archnest_container_running", "1 when the container runs, else 0.", labels=labels
    )
    health = GaugeMetricFamily(
        "archnest_container_health",
        "1 healthy, 0 unhealthy; absent without a health check or while starting.",
        labels=labels,
    )
    cpu = GaugeMetricFamily(
        "archnest_container_cpu_percent",
        "CPU use of the latest sample (100 = one core).",
        labels=labels,
    )
    mem = GaugeMetricFamily(
        "archnest_container_memory_usage_bytes",
        "Memory use of the latest sample.",
        labels=labels,
    )
    limit = GaugeMetricFamily(
        "archnest_container_memory_limit_bytes",
        "Memory limit of the latest sample.",
        labels=labels,
    )
    restarts = CounterMetricFamily(
        "archnest_container_restarts",
        "Restarts by the engine's restart policy (sources that report it).",
        labels=labels,
    )
    counts: dict[str, dict[str, int]] = {h.id: {} for h in hosts}
    for c in containers:
        key = (c.host_id, c.id)
        values = [c.host_id, c.name]
        counts.setdefault(c.host_id, {})
        counts[c.host_id][c.state] = counts[c.host_id].get(c.state, 0) + 1
        state.add_metric([*values, c.state], 1.0)
        running.add_metric(values, 1.0 if c.state == "running" else 0.0)
        extra = reported.get(key) or {}
        word = extra.get("health") or _health(c.status)
        if word in HEALTH_VALUES:
            health.add_metric(values, HEALTH_VALUES[word])
        # A stopped container's last sample is not its current use. The report's own
        # sample first: it is as fresh as the report (the collector keeps fewer).
        sample = None
        if c.state == "running":
            stored = extra.get("stats")
            sample = Stats(**stored) if isinstance(stored, dict) else samples.get(key)
        if sample is not None:
            if sample.cpu_percent is not None:
                cpu.add_metric(values, sample.cpu_percent)
            if sample.mem_usage_bytes is not None:
                mem.add_metric(values, float(sample.mem_usage_bytes))
            if sample.mem_limit_bytes is not None:
                limit.add_metric(values, float(sample.mem_limit_bytes))
        if isinstance(extra.get("restart_count"), int):
            restarts.add_metric(values, float(extra["restart_count"]))
    for h in hosts:
        up.add_metric([h.id, h.source], 1.0 if h.status == "ok" else 0.0)
        age.add_metric([h.id], _data_age(h, now))
        for name, n in sorted(counts.get(h.id, {}).items()):
            per_state.add_metric([h.id, name], float(n))
    yield from (up, age, per_state, state, running, health, cpu, mem, limit, restarts)


# ---- the route ---------------------------------------------------------------------

_DOC = dict(
    description="Prometheus text exposition format 0.0.4; every series is listed in "
    "docs/metrics.md. Needs a viewer's API token (or session) unless "
    "`ARCHNEST_METRICS_PUBLIC=1`. Cached for 2 s.",
    tags=("meta",),
    responses={200: Content("text/plain", {"type": "string"})},
)


@operation("Prometheus metrics of the fleet and the app", **_DOC)  # type: ignore[arg-type]
async def metrics_view(request: web.Request) -> web.Response:
    body = await request.app[METRICS_KEY].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


@public
@operation("Prometheus metrics of the fleet and the app (public)", **_DOC)  # type: ignore[arg-type]
async def metrics_public_view(request: web.Request) -> web.Response:
    # ARCHNEST_METRICS_PUBLIC=1: no credentials needed (a scraper on a trusted network).
    return await metrics_view(request)


def setup_metrics_routes(app: web.Application) -> None:
    """The route (its role chosen once, from the settings) and the app's registry, which
    :func:`metrics_middleware` (registered in the app factory) records into."""
    app[METRICS_KEY] = Metrics(app)
    public_mode = app[SETTINGS_KEY].metrics_public
    app.router.add_get("/metrics", metrics_public_view if public_mode else metrics_view)
