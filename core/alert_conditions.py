"""What each kind of alert rule looks at, and what is wrong right now.

Every function returns the rule's *active* conditions: ``{(host_id, container): message}``
(``container`` is ``""`` for a rule about a host). The evaluator (core/alerts.py) turns
a new key into a firing alert and a key gone into a resolved one.

- ``container_exited``: a container whose state is ``exited`` with a non-zero exit code
  (read from Docker's status phrase, ``Exited (3) 5 seconds ago``). Gone when it runs
  again (or is removed).
- ``unhealthy``: a container whose status says ``(unhealthy)``.
- ``host_down``: a docker or ssh host whose status is ``error``.
- ``agent_stale``: an agent host whose status is ``stale`` (no report for
  ``ARCHNEST_AGENT_STALE_SECONDS``).
- ``restart_loop``: at least ``threshold`` restarts of a container in the last
  ``for_seconds`` (from the container timeline).
- ``oom``: an out-of-memory kill of a container in the last ``for_seconds`` (at least
  :data:`OOM_WINDOW`), from the container timeline.
- ``cpu_above`` / ``mem_above``: CPU %, or memory use as a % of the container's limit,
  above ``threshold`` in every stats sample of the last ``for_seconds`` (the stats
  history's raw tier; for_seconds 0: the latest sample).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from aiohttp import web

from .alert_store import Rule, utc
from .containers import ContainerSummary
from .hosts import list_all_containers
from .keys import DB_KEY, SETTINGS_KEY
from .sources import HostInfo
from .stats_history import RAW, container_stats
from .timeline import events_since, exit_code_of

Active = dict[tuple[str, str], str]
PROJECT_LABEL = "com.docker.compose.project"
OOM_WINDOW = 300
# Seconds a container's latest stats sample may be late beyond three intervals.
SAMPLE_SLACK = 30
HOST_KINDS = frozenset({"host_down", "agent_stale"})
CONTAINER_KINDS = frozenset(
    {"container_exited", "unhealthy", "restart_loop", "oom", "cpu_above", "mem_above"}
)
KINDS = (
    "container_exited",
    "restart_loop",
    "unhealthy",
    "oom",
    "host_down",
    "agent_stale",
    "cpu_above",
    "mem_above",
)
# Kinds whose condition must hold for ``for_seconds`` before the alert fires; the others
# use for_seconds as the window they look back over.
HELD_KINDS = frozenset({"container_exited", "unhealthy", "host_down", "agent_stale"})


@dataclass
class Fleet:
    """One read of every host and container for a round."""

    hosts: list[HostInfo]
    containers: list[ContainerSummary]
    names: dict[str, str] = field(default_factory=dict)
    # Hosts not listed (down, or not yet): their containers' alerts are left as they are.
    unreachable: set[str] = field(default_factory=set)

    def by_id(self) -> dict[tuple[str, str], ContainerSummary]:
        return {(c.host_id, c.id): c for c in self.containers}

    def by_name(self) -> dict[tuple[str, str], ContainerSummary]:
        return {(c.host_id, c.name): c for c in self.containers}


async def read_fleet(app: web.Application) -> Fleet:
    hosts, containers = await list_all_containers(app, all=True)
    return Fleet(
        hosts=hosts,
        containers=containers,
        names={h.id: h.name for h in hosts},
        unreachable={h.id for h in hosts if h.status in ("error", "unknown")},
    )


def host_in_scope(rule: Rule, host_id: str) -> bool:
    hosts = rule.scope.get("hosts") or []
    return not hosts or host_id in hosts


def container_in_scope(rule: Rule, c: ContainerSummary) -> bool:
    if not host_in_scope(rule, c.host_id):
        return False
    labels = rule.scope.get("labels") or {}
    if any(c.labels.get(k) != v for k, v in labels.items()):
        return False
    project = rule.scope.get("project")
    return not project or c.labels.get(PROJECT_LABEL) == project


def _where(fleet: Fleet, host_id: str) -> str:
    return fleet.names.get(host_id) or host_id


def container_exited(rule: Rule, fleet: Fleet) -> Active:
    out: Active = {}
    for c in fleet.containers:
        if c.state != "exited" or not container_in_scope(rule, c):
            continue
        code = exit_code_of(c.status or "")
        if code:
            out[(c.host_id, c.name)] = (
                f"{c.name} on {_where(fleet, c.host_id)} exited with code {code}"
            )
    return out


def unhealthy(rule: Rule, fleet: Fleet) -> Active:
    return {
        (c.host_id, c.name): f"{c.name} on {_where(fleet, c.host_id)} is unhealthy"
        for c in fleet.containers
        if "(unhealthy)" in (c.status or "") and container_in_scope(rule, c)
    }


def host_down(rule: Rule, fleet: Fleet) -> Active:
    return {
        (h.id, ""): f"host {h.name} is down: {h.error or 'not answering'}"[:1000]
        for h in fleet.hosts
        if h.source in ("docker", "ssh") and h.status == "error" and host_in_scope(rule, h.id)
    }


def agent_stale(rule: Rule, fleet: Fleet) -> Active:
    return {
        (h.id, ""): f"agent host {h.name} stopped reporting"
        for h in fleet.hosts
        if h.source == "agent" and h.status == "stale" and host_in_scope(rule, h.id)
    }


async def stats_above(app: web.Application, rule: Rule, fleet: Fleet) -> Active:
    """cpu_above / mem_above from the stats history's raw samples."""
    threshold = rule.threshold if rule.threshold is not None else 90.0
    interval = app[SETTINGS_KEY].stats_interval
    at = datetime.now(UTC)
    # A host's containers are sampled one after another (1-2 s each), so a busy host's
    # samples come less often than the interval: an older latest sample still counts.
    stale = 3 * interval + SAMPLE_SLACK
    since = at - timedelta(seconds=rule.for_seconds + stale)
    c = container_stats.c
    stmt = (
        sa.select(
            c.host_id, c.container_id, c.t, c.cpu_percent, c.mem_usage_bytes, c.mem_limit_bytes
        )
        .where(c.tier == RAW.number, c.t >= since)
        .order_by(c.t)
    )
    async with app[DB_KEY].engine.connect() as conn:
        rows = list(await conn.execute(stmt))
    series: dict[tuple[str, str], list[tuple[datetime, float]]] = defaultdict(list)
    # Row.t would be the row's own tuple helper: unpacked by position instead.
    for host_id, container_id, t, cpu, mem_usage, mem_limit in rows:
        if rule.kind == "cpu_above":
            value = cpu
        elif mem_usage is not None and mem_limit:
            value = 100.0 * mem_usage / mem_limit
        else:
            value = None
        if value is not None:
            series[(host_id, container_id)].append((utc(t), value))  # type: ignore[arg-type]
    containers = fleet.by_id()
    what = "CPU" if rule.kind == "cpu_above" else "memory"
    out: Active = {}
    for key, points in series.items():
        c = containers.get(key)
        if c is None or c.state != "running" or not container_in_scope(rule, c):
            continue
        latest_t, latest = points[-1]
        if (at - latest_t).total_seconds() > stale or latest <= threshold:
            continue
        held_since = latest_t
        for t, value in reversed(points):
            if value <= threshold:
                break
            held_since = t
        if (latest_t - held_since).total_seconds() >= rule.for_seconds:
            out[(c.host_id, c.name)] = (
                f"{c.name} on {_where(fleet, c.host_id)}: {what} {latest:.0f}% above {threshold:g}%"
            )
    return out


def _window(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 120 and seconds % 60 == 0 else f"{seconds} s"


async def restart_loop(app: web.Application, rule: Rule, fleet: Fleet) -> Active:
    """Restarts in the window, per container: a ``start`` after a ``die`` (a restart
    policy, or a restart by hand), or the timeline's ``restart`` entries (``docker
    restart`` also records die and start; an agent host records ``restart`` when it
    finds a container restarting), whichever counts more."""
    threshold = max(1, int(rule.threshold or 1))
    since = datetime.now(UTC) - timedelta(seconds=rule.for_seconds)
    events = await events_since(app, since, ("start", "die", "restart"))
    died: set[tuple[str, str]] = set()
    after_die: dict[tuple[str, str], int] = defaultdict(int)
    restarts: dict[tuple[str, str], int] = defaultdict(int)
    for e in events:
        key = (e["host_id"], e["container_id"])
        if e["event"] == "die":
            died.add(key)
        elif e["event"] == "start" and key in died:
            after_die[key] += 1
            died.discard(key)
        elif e["event"] == "restart":
            restarts[key] += 1
    containers = fleet.by_id()
    out: Active = {}
    for key in after_die.keys() | restarts.keys():
        count = max(after_die.get(key, 0), restarts.get(key, 0))
        c = containers.get(key)
        if count < threshold or c is None or not container_in_scope(rule, c):
            continue
        out[(c.host_id, c.name)] = (
            f"{c.name} on {_where(fleet, c.host_id)} restarted {count} times in the last "
            f"{_window(rule.for_seconds)}"
        )
    return out


async def oom(app: web.Application, rule: Rule, fleet: Fleet) -> Active:
    """Out-of-memory kills in the window (for_seconds, at least :data:`OOM_WINDOW`)."""
    window = max(rule.for_seconds, OOM_WINDOW)
    events = await events_since(app, datetime.now(UTC) - timedelta(seconds=window), ("oom",))
    kills: dict[tuple[str, str], int] = defaultdict(int)
    names: dict[tuple[str, str], str] = {}
    for e in events:
        key = (e["host_id"], e["container_id"])
        kills[key] += 1
        names[key] = e["name"]
    containers = fleet.by_id()
    out: Active = {}
    for key, count in kills.items():
        c = containers.get(key)
        if c is None or not container_in_scope(rule, c):
            continue  # gone: nothing left to alert about
        times = "once" if count == 1 else f"{count} times"
        out[(c.host_id, c.name)] = (
            f"{c.name} on {_where(fleet, c.host_id)} was killed for lack of memory {times} "
            f"in the last {_window(window)}"
        )
    return out


async def active_conditions(app: web.Application, rule: Rule, fleet: Fleet) -> Active:
    kind = rule.kind
    if kind == "container_exited":
        return container_exited(rule, fleet)
    if kind == "unhealthy":
        return unhealthy(rule, fleet)
    if kind == "host_down":
        return host_down(rule, fleet)
    if kind == "agent_stale":
        return agent_stale(rule, fleet)
    if kind in ("cpu_above", "mem_above"):
        return await stats_above(app, rule, fleet)
    if kind == "restart_loop":
        return await restart_loop(app, rule, fleet)
    if kind == "oom":
        return await oom(app, rule, fleet)
    return {}
