"""The live state: each watched host's containers, kept current by its event stream.

A source whose hosts stream container events (``Capabilities.events``) gets one watcher
task per host: subscribe, list the host (after subscribing, so nothing in between is
lost), then apply each event by listing the host again (bursts coalesce into one list)
and publish what changed to ``/api/events``. A periodic resync catches anything an
event did not say. When the stream fails the host turns to ``error`` at once, keeps its
last known containers (with their age) and is retried with backoff.

Lists, the all-hosts view and ``GET /api/containers`` read this cache, so no page waits
on a slow or dead host. Hosts of sources without events (agents) are read as before and
publish through :func:`publish_containers` when their data changes. A sweep every few
seconds starts watchers for new hosts, stops those of removed ones, and reports status
changes of hosts nobody watches (an agent turning stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .containers import ContainerSummary
from .errors import ApiError, NotFound
from .event_hub import HUB_KEY, EventHub
from .keys import SETTINGS_KEY, SOURCES_KEY
from .resolve import with_timeout
from .sources import HostInfo, HostSource, NotSupported
from .timeline import TIMELINE_KEY

log = logging.getLogger("archnest.live")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# A host in error is retried when asked about unless its last attempt failed less than
# KICK_SECONDS ago, and the asker waits at most KICK_WAIT for that attempt.
KICK_SECONDS = 0.25
KICK_WAIT = 1.0
QUICK_RETRIES = 3
# An action made through the app waits at most this long for the listing that shows it.
REFRESH_WAIT = 3.0
# Closing a subscription, and all watchers at shutdown, takes at most this long.
CLOSE_SECONDS = 3.0
# Events of one host arriving within this time are applied with one listing.
COALESCE_SECONDS = 0.05
# Actions that change what a list row shows; exec_*, attach, resize, top... do not.
STATE_ACTIONS = frozenset(
    {
        "create",
        "start",
        "restart",
        "die",
        "stop",
        "kill",
        "oom",
        "pause",
        "unpause",
        "destroy",
        "rename",
        "health_status",
        "update",
    }
)


RUNNING_STATES = frozenset({"running", "paused", "restarting"})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _health(status: str) -> str | None:
    for word in ("healthy", "unhealthy", "health: starting"):
        if f"({word})" in status:
            return word
    return None


def _shown(c: ContainerSummary) -> tuple[str, str, str | None]:
    """What a subscriber is told about: a status text like "Up 5 minutes" changes every
    minute and is not news by itself."""
    return c.state, c.name, _health(c.status)


def _seen_shown(seen: tuple[str, str, str]) -> tuple[str, str, str | None]:
    """:func:`_shown` of a stored (state, name, status)."""
    return seen[0], seen[1], _health(seen[2])


def container_event(c: ContainerSummary, action: str) -> dict[str, Any]:
    return {
        "host_id": c.host_id,
        "id": c.id,
        "name": c.name,
        "state": c.state,
        "status": c.status,
        "action": action,
    }


@dataclass
class HostState:
    host_id: str
    source: HostSource
    key: str
    name: str = ""
    containers: dict[str, ContainerSummary] = field(default_factory=dict)
    status: str = "unknown"
    error: str | None = None
    # Subscribed and listed: the cache is current. ``since`` is when that last held.
    live: bool = False
    since: float | None = None
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    actions: dict[str, str] = field(default_factory=dict)  # id -> latest event action
    syncs: int = 0  # times the stream came up and listed
    # Someone asked about the host while it was in error: retry now, not after the
    # backoff (``retried`` is set when that attempt has an outcome).
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    retried: asyncio.Event = field(default_factory=asyncio.Event)
    failed_at: float = 0.0
    quick_retries: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Listings started and finished (refresh waits for one that began after it asked).
    started: int = 0
    completed: int = 0
    synced_cond: asyncio.Condition = field(default_factory=asyncio.Condition)

    def age(self) -> tuple[str | None, float | None]:
        """``updated_at`` and ``data_age`` for the host's answer."""
        now = time.time()
        if self.live:
            return _iso(time.time()), 0.0
        if self.since is None:
            return None, None
        return _iso(self.since), round(max(0.0, now - self.since), 1)


class LiveState:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        settings = app[SETTINGS_KEY]
        self.resync_seconds = settings.live_resync_seconds
        self.sweep_seconds = settings.live_sweep_seconds
        self.enabled = settings.live
        self.hosts: dict[str, HostState] = {}
        self._others: dict[str, tuple[str, str | None]] = {}  # unwatched host -> status
        # Unwatched host -> container id -> (state, name, status) of its last data.
        self._snapshots: dict[str, dict[str, tuple[str, str, str]]] = {}
        self._sweeper: asyncio.Task | None = None
        self.closed = False
        # Reports of hosts without events, by source (archnest_agent_reports_total).
        self.reports: Counter[str] = Counter()

    @property
    def hub(self) -> EventHub:
        return self.app[HUB_KEY]

    # ---- watchers -----------------------------------------------------------------
    def watchable(self, source: HostSource) -> bool:
        return self.enabled and not self.closed and bool(source.capabilities.events)

    def state_for(self, source: HostSource, host_id: str) -> HostState | None:
        """The host's live state (its watcher started on first use), or None when the
        source has no events."""
        if not self.watchable(source):
            return None
        state = self.hosts.get(host_id)
        if state is None:
            key = host_id.partition(":")[2]
            state = self.hosts[host_id] = HostState(host_id, source, key, name=host_id)
            state.task = asyncio.get_running_loop().create_task(
                self._watch(state), name=f"archnest-live-{host_id}"
            )
        return state

    async def forget(self, host_id: str) -> None:
        state = self.hosts.pop(host_id, None)
        if state is not None and state.task is not None:
            state.task.cancel()
            await asyncio.gather(state.task, return_exceptions=True)
            self.hub.publish("host", {"host_id": host_id, "status": "removed", "error": None})

    async def _watch(self, state: HostState) -> None:
        backoff = BACKOFF_FIRST
        while True:
            syncs = state.syncs
            try:
                await self._follow(state)
                raise ApiError("the event stream ended")
            except asyncio.CancelledError:
                raise
            except NotSupported:
                # Capabilities said events, the host says no (e.g. a plugin off): read
                # it the old way (no state) instead of retrying forever.
                self.hosts.pop(state.host_id, None)
                state.synced.set()
                return
            except NotFound as exc:
                if exc.code == "unknown_host":  # removed meanwhile
                    self.hosts.pop(state.host_id, None)
                    state.synced.set()
                    return
                self._failed(state, exc.message)
            except ApiError as exc:
                self._failed(state, exc.message)
            except Exception as exc:  # a plugin bug must stay this host's problem
                log.warning("watching %s failed: %r", state.host_id, exc)
                self._failed(state, f"{type(exc).__name__}: {exc}")
            if state.syncs > syncs:  # it had worked: a new failure starts the backoff again
                backoff = BACKOFF_FIRST
            if state.quick_retries > 0:
                # Asked about while in error: a connection the engine dropped while it
                # was down can fail the first attempts; try a few more at once.
                state.quick_retries -= 1
                continue
            state.retried.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), backoff * (0.8 + 0.4 * random.random()))
            state.wake.clear()
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _failed(self, state: HostState, message: str) -> None:
        state.failed_at = time.monotonic()
        was = (state.status, state.error)
        if state.live:
            state.since = time.time()
        state.live, state.status, state.error = False, "error", message
        state.synced.set()
        if state.quick_retries == 0:  # else the asker waits for the quick retries too
            state.retried.set()
        if (state.status, state.error) != was:
            self.hub.publish(
                "host", {"host_id": state.host_id, "status": "error", "error": message}
            )

    async def _follow(self, state: HostState) -> None:
        events = state.source.events(state.key)
        tasks: list[asyncio.Task] = []
        try:
            await with_timeout(self.app, anext(events), state.name)  # None: subscribed
            await self._sync(state, "update")
            was = state.status
            state.live, state.status, state.error = True, "ok", None
            state.since = time.time()
            state.syncs += 1
            state.synced.set()
            state.retried.set()
            if was != "ok":
                self.hub.publish("host", {"host_id": state.host_id, "status": "ok", "error": None})
            tasks = [
                asyncio.ensure_future(self._read(state, events)),
                asyncio.ensure_future(self._apply_loop(state)),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failed listing or stream is this host's error
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(events.aclose(), CLOSE_SECONDS)  # type: ignore[attr-defined]

    async def _read(self, state: HostState, events: AsyncIterator[dict[str, Any] | None]) -> None:
        timeline = self.app.get(TIMELINE_KEY)
        async for event in events:
            if event is None:
                continue
            action = str(event.get("Action") or event.get("status") or "")
            action = action.partition(":")[0].strip()
            if action not in STATE_ACTIONS:
                continue
            if timeline is not None:
                timeline.record_engine_event(state.host_id, event)
            actor = event.get("Actor") or {}
            cid = str(actor.get("ID") or event.get("id") or "")
            if cid:
                state.actions[cid] = action
            state.dirty.set()

    async def _apply_loop(self, state: HostState) -> None:
        """List the host after events (coalesced) and at the resync interval."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.dirty.wait(), self.resync_seconds)
                await asyncio.sleep(COALESCE_SECONDS)
            state.dirty.clear()
            await self._sync(state, "update")

    async def _sync(self, state: HostState, default_action: str) -> None:
        async with state.lock:  # the first listing and the event loop's never interleave
            state.started += 1
            number = state.started
            try:
                await self._sync_locked(state, default_action)
            finally:
                # A failed listing counts as done too: nobody waits on a dead host.
                async with state.synced_cond:
                    state.completed = number
                    state.synced_cond.notify_all()

    async def _sync_locked(self, state: HostState, default_action: str) -> None:
        actions, state.actions = state.actions, {}
        rows = await with_timeout(
            self.app, state.source.list_containers(state.key, all=True), state.name
        )
        fresh = {c.id: c for c in rows}
        old = state.containers
        state.containers = fresh
        if state.live:
            state.since = time.time()
        for cid, c in fresh.items():
            before = old.get(cid)
            if before is None:
                self.hub.publish("container", container_event(c, actions.get(cid, "create")))
            elif _shown(before) != _shown(c) or cid in actions:
                self.hub.publish("container", container_event(c, actions.get(cid, default_action)))
        for cid, c in old.items():
            if cid not in fresh:
                gone = c.model_copy(update={"state": "removed", "status": ""})
                self.hub.publish("container", container_event(gone, "destroy"))

    async def refresh(self, source: HostSource, host_id: str) -> None:
        """List a watched host now (after an action made through this app, so the
        answer and the next list agree without waiting for the event)."""
        state = self.hosts.get(host_id)
        if state is None or not state.live:
            return
        # Ask the watcher for a listing that starts after this moment and wait for it
        # (bounded): it coalesces with the listings the action's own events cause,
        # instead of queueing one more behind them.
        want = state.started + 1
        state.dirty.set()
        with contextlib.suppress(TimeoutError):
            async with state.synced_cond:
                await asyncio.wait_for(
                    state.synced_cond.wait_for(lambda: state.completed >= want),
                    min(self.app[SETTINGS_KEY].host_timeout, REFRESH_WAIT),
                )

    async def rows(self, state: HostState, host: HostInfo, all: bool) -> list[ContainerSummary]:
        """The host's containers from the cache, its status, error and data age set on
        ``host``. The first use of a host waits for its first listing, bounded like a
        direct one; after that nothing waits on the host."""
        await self.describe(state, host)
        rows = list(state.containers.values())
        if all:
            return rows
        # What the engine lists without all=1: containers whose process is up.
        return [c for c in rows if c.state in RUNNING_STATES]

    async def describe(self, state: HostState, host: HostInfo) -> None:
        """Set the host's status, error and data age from its watcher (the first use
        waits for the first listing, bounded like a direct probe)."""
        state.name = host.name  # for its error messages ("NAME: no answer within 5s")
        if not state.synced.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.synced.wait(), self.app[SETTINGS_KEY].host_timeout)
        elif not state.live and time.monotonic() - state.failed_at > KICK_SECONDS:
            # A host in error that someone asks about is tried again now (unless its
            # last attempt just failed), and the answer waits a moment for it: a host
            # that came back shows ok at once, a dead one costs the asker at most
            # KICK_WAIT.
            state.retried.clear()
            state.quick_retries = QUICK_RETRIES
            state.wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.retried.wait(), KICK_WAIT)
        if state.synced.is_set():
            host.status, host.error = state.status, state.error  # type: ignore[assignment]
        else:
            host.status = "error"
            host.error = f"{host.name}: no answer within {self.app[SETTINGS_KEY].host_timeout:g}s"
        host.updated_at, host.data_age = state.age()

    # ---- unwatched hosts ----------------------------------------------------------
    def publish_containers(self, host_id: str, rows: list[ContainerSummary]) -> None:
        """A host without an event stream has new data (an agent's report): tell the
        subscribers what changed since its last data, and the timeline.

        Called for every report (hundreds a second on a big fleet): a container that
        did not change (the same state, name and status: statuses carry no durations)
        costs one tuple comparison."""
        old = self._snapshots.get(host_id)
        new = {c.id: (c.state, c.name, c.status) for c in rows}
        self._snapshots[host_id] = new
        if old is not None and old == new:
            return
        timeline = self.app.get(TIMELINE_KEY)
        if timeline is not None:
            timeline.record_report_changes(host_id, old, new)
        if old is None and not self.hub.subscribers:
            return
        old = old or {}
        for c in rows:
            before = old.get(c.id)
            if before is None:
                self.hub.publish("container", container_event(c, "create"))
            elif before != new[c.id] and _seen_shown(before) != _seen_shown(new[c.id]):
                # A status text alone is not news (see _shown).
                self.hub.publish("container", container_event(c, "update"))
        for cid in old.keys() - new.keys():
            self.hub.publish(
                "container",
                {
                    "host_id": host_id,
                    "id": cid,
                    "name": old[cid][1],
                    "state": "removed",
                    "status": "",
                    "action": "destroy",
                },
            )

    # ---- sweep --------------------------------------------------------------------
    async def sweep(self) -> None:
        """Start watchers of new hosts, stop those of removed ones, and publish status
        changes of the hosts nobody watches. Reads the sources' own storage only."""
        seen: set[str] = set()
        for source in list(self.app[SOURCES_KEY].values()):
            try:
                hosts: list[HostInfo] = await source.list_hosts()
            except Exception as exc:
                log.info("sweep: source %s could not list hosts: %r", source.name, exc)
                # Unknown is not gone: keep its watchers and statuses.
                seen.update(h for h in self.hosts if h.startswith(source.name + ":"))
                seen.update(h for h in self._others if h.startswith(source.name + ":"))
                continue
            for host in hosts:
                seen.add(host.id)
                if self.watchable(source):
                    self.state_for(source, host.id).name = host.name  # type: ignore[union-attr]
                    continue
                now = (host.status, host.error)
                if self._others.get(host.id) not in (None, now):
                    self.hub.publish(
                        "host", {"host_id": host.id, "status": host.status, "error": host.error}
                    )
                self._others[host.id] = now
        for host_id in list(self.hosts):
            if host_id not in seen:
                await self.forget(host_id)
        for host_id in list(self._others):
            if host_id not in seen:
                del self._others[host_id]
                self._snapshots.pop(host_id, None)
                self.hub.publish("host", {"host_id": host_id, "status": "removed", "error": None})

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly away: try again later
                log.warning("live sweep failed: %r", exc)
            await asyncio.sleep(self.sweep_seconds)

    def start(self) -> None:
        if self.enabled:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_loop(), name="archnest-live-sweep"
            )

    async def close(self) -> None:
        self.closed = True
        tasks = [t for t in [self._sweeper, *(s.task for s in self.hosts.values())] if t]
        for task in tasks:
            task.cancel()
        # Bounded: a subscription whose host went silent must not hold the shutdown;
        # the sources close next and end whatever is still waiting on them.
        _, pending = await asyncio.wait(tasks, timeout=CLOSE_SECONDS) if tasks else (None, [])
        if pending:
            log.warning(
                "live state: %d watchers did not stop within %gs", len(pending), CLOSE_SECONDS
            )
        self.hosts.clear()


LIVE_KEY = web.AppKey("archnest_live", LiveState)


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the sources start (watchers use them) and before they close."""
    live = app[LIVE_KEY] = LiveState(app)
    live.start()
    yield
    await live.close()


def publish_containers(app: web.Application, host_id: str, rows: list[ContainerSummary]) -> None:
    """For a source without an event stream: the host ``host_id`` has new data (e.g. an
    agent's report); subscribers of ``GET /api/events`` hear what changed."""
    live = app.get(LIVE_KEY)
    if live is not None:
        live.reports[host_id.partition(":")[0]] += 1
        live.publish_containers(host_id, rows)
