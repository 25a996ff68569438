"""The stats collector: samples running containers every ``ARCHNEST_STATS_INTERVAL``
seconds into the stats history, takes agent reports' samples, and runs downsampling and
retention (core/stats_history.py).

Docker and ssh hosts (sources with ``events`` and ``stats``) are taken from the live
state's cache, not listed again. A round starts one task per host that goes through the
host's running containers one after another, so a host never has more than one sample
in flight, and at most :data:`CONCURRENCY` samples run at once overall. A sample is the
engine's one-shot document (``HostSource.stats_sample``), its CPU share measured since
the container's previous sample (the first sample of a container has none): it waits
for one of the engine's stats ticks (dockerd collects once a second), where the full
sample (``HostSource.stats``, what ``docker stats`` shows) waits for two. Sources
without one-shot samples (or an ssh host without its Engine API stream) get the full
sample. A host whose previous round has not
finished (a slow host, or more running containers than fit in one interval) is skipped
this round: it delays only itself and is sampled less often. A failed sample is logged
at debug and skipped. Samples are written with one executemany per round.

With several replicas on PostgreSQL, only the holder of an advisory lock samples docker
and ssh hosts (otherwise each replica would sample every container); agent samples are
recorded by the replica that received the report. Downsampling runs on every replica:
it is idempotent by bucket (see core/stats_history.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .containers import Stats
from .daily import repeat
from .keys import DB_KEY, SETTINGS_KEY
from .leader import LeaderLock
from .live import LIVE_KEY, HostState
from .normalise import cpu_counters, stats_between
from .sources import NotSupported
from .stats_history import apply_retention, downsample, insert_samples, sample_row

log = logging.getLogger("archnest.stats")

CONCURRENCY = 8
MAINTENANCE_SECONDS = 300.0  # downsampling and retention
# A host whose source had no one-shot sample is tried again with one after this long.
ONE_SHOT_RETRY = 300.0
# "stats" in ASCII: the advisory lock key of the sampling replica.
LEADER_LOCK = 0x7374617473
# Pending rows kept when the database is away (then the oldest are dropped).
MAX_PENDING = 100_000

Latest = dict[tuple[str, str], tuple[datetime, Stats]]
Samples = Mapping[str, tuple[str, Stats]]


class StatsCollector:
    def __init__(self, app: web.Application, interval: float) -> None:
        self.app = app
        self.interval = interval
        self.semaphore = asyncio.Semaphore(CONCURRENCY)
        self.host_tasks: dict[str, asyncio.Task] = {}
        self.pending: list[dict] = []
        self.latest: Latest = {}
        self.agent_last: dict[str, float] = {}
        # Per host: the CPU counters of its containers' previous one-shot samples, and
        # until when the host is sampled the slow way (its source had no one-shot).
        self.cpu_seen: dict[str, dict[str, tuple[int, int]]] = {}
        self.no_one_shot: dict[str, float] = {}
        self.rounds = 0
        self.leader = LeaderLock(LEADER_LOCK)
        self._tasks: list[asyncio.Task] = []

    # ---- samples ----------------------------------------------------------------
    def add(self, host_id: str, container_id: str, name: str, t: datetime, s: Stats) -> None:
        self.latest[(host_id, container_id)] = (t, s)
        self.pending.append(sample_row(host_id, container_id, name, t, s))
        if len(self.pending) > MAX_PENDING:
            del self.pending[: len(self.pending) - MAX_PENDING]

    def record(self, host_id: str, samples: Samples | Callable[[], Samples]) -> None:
        """An agent report's samples; at most one per host and interval is kept."""
        now = time.monotonic()
        if now - self.agent_last.get(host_id, -1e9) < self.interval * 0.9:
            return
        self.agent_last[host_id] = now
        t = datetime.now(UTC)
        if callable(samples):
            samples = samples()
        for cid, (name, s) in samples.items():
            self.add(host_id, cid, name, t, s)

    async def flush(self) -> None:
        rows, self.pending = self.pending, []
        try:
            await insert_samples(self.app[DB_KEY].engine, rows)
        except Exception as exc:
            log.warning("stats history: %d samples not written: %r", len(rows), exc)
            self.pending[:0] = rows[-MAX_PENDING:]

    async def _sample_host(self, state: HostState) -> None:
        running = [c for c in list(state.containers.values()) if c.state == "running"]
        # CPU counters of this host's previous round, by container: kept for the
        # containers sampled this round only (a removed one's go with it).
        previous = self.cpu_seen.get(state.host_id, {})
        seen: dict[str, tuple[int, int]] = {}
        timeout = self.app[SETTINGS_KEY].host_timeout
        one_shot = self.no_one_shot.get(state.host_id, 0.0) <= time.monotonic()
        for c in running:
            async with self.semaphore:
                try:
                    if one_shot:
                        try:
                            sample = await asyncio.wait_for(
                                state.source.stats_sample(state.key, c.id), timeout
                            )
                        except NotSupported:
                            # The host's source has none, or not now (an ssh host
                            # without its Engine API stream): the full sample, and
                            # the one-shot tried again a few minutes later.
                            self.no_one_shot[state.host_id] = time.monotonic() + ONE_SHOT_RETRY
                            one_shot = False
                    if one_shot:
                        s = self._from_sample(sample, previous.get(c.id), seen, c.id)
                    else:
                        s = await asyncio.wait_for(state.source.stats(state.key, c.id), timeout)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("stats of %s on %s skipped: %r", c.name, state.host_id, exc)
                    continue
            if s is not None:
                self.add(state.host_id, c.id, c.name, datetime.now(UTC), s)
        self.cpu_seen[state.host_id] = seen

    @staticmethod
    def _from_sample(
        sample: dict[str, Any] | None,
        before: tuple[int, int] | None,
        seen: dict[str, tuple[int, int]],
        cid: str,
    ) -> Stats | None:
        """A one-shot sample as Stats, its CPU share since the container's previous one;
        None for a container that stopped meanwhile (no processes)."""
        if not sample or not (sample.get("pids_stats") or {}).get("current"):
            return None
        counters = cpu_counters(sample)
        if counters is not None:
            seen[cid] = counters
        return stats_between(sample, before)

    async def round(self) -> None:
        """Write what the last round sampled; start this round's host tasks."""
        self.rounds += 1
        await self.flush()
        self.host_tasks = {h: t for h, t in self.host_tasks.items() if not t.done()}
        live = self.app.get(LIVE_KEY)
        if live is None or not live.hosts:
            return
        try:
            leader = await self.leader.held(self.app[DB_KEY].engine)
        except Exception as exc:
            log.debug("stats leader lock unavailable: %r", exc)
            leader = False
        if not leader:
            return
        for host_id, state in list(live.hosts.items()):
            caps = state.source.capabilities
            if not (caps.stats and caps.events) or not state.live or host_id in self.host_tasks:
                continue
            self.host_tasks[host_id] = asyncio.create_task(
                self._sample_host(state), name=f"archnest-stats-{host_id}"
            )
        # Forget the latest sample of containers not sampled for a while (gone, stopped).
        cutoff = datetime.now(UTC).timestamp() - 3 * self.interval - 60
        self.latest = {k: v for k, v in self.latest.items() if v[0].timestamp() >= cutoff}

    async def _maintenance(self) -> None:
        engine = self.app[DB_KEY].engine
        while True:
            await asyncio.sleep(MAINTENANCE_SECONDS)
            try:
                await downsample(engine)
                await apply_retention(engine)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stats downsampling failed; next try later: %r", exc)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                repeat(self.interval, self.round, "stats round"), name="archnest-stats"
            ),
            asyncio.create_task(self._maintenance(), name="archnest-stats-maintenance"),
        ]

    async def close(self) -> None:
        tasks = [*self._tasks, *self.host_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.flush()
        await self.leader.release()


COLLECTOR_KEY = web.AppKey("archnest_stats_collector", StatsCollector)


async def stats_ctx(app: web.Application) -> AsyncIterator[None]:
    """For ``app.cleanup_ctx``, after the live state (its cache is what is sampled)."""
    collector = app[COLLECTOR_KEY] = StatsCollector(app, app[SETTINGS_KEY].stats_interval)
    collector.start()
    yield
    await collector.close()


def record_stats(
    app: web.Application, host_id: str, samples: Samples | Callable[[], Samples]
) -> None:
    """Take stats samples a source received rather than sampled (an agent's report):
    ``samples`` maps a container id to its (name, Stats), or is a function returning
    that, called only when the samples are kept (reports coming faster than the interval
    then cost nothing). Kept in the stats history at most once per
    ``ARCHNEST_STATS_INTERVAL`` per host; written with the next collection round."""
    collector = app.get(COLLECTOR_KEY)
    if collector is not None:
        collector.record(host_id, samples)


def latest_samples(app: web.Application) -> Latest:
    """The latest sample of each container sampled recently: (host_id, container_id) ->
    (time taken, Stats). For /metrics; read-only."""
    collector = app.get(COLLECTOR_KEY)
    return dict(collector.latest) if collector is not None else {}


__all__ = ["COLLECTOR_KEY", "StatsCollector", "latest_samples", "record_stats", "stats_ctx"]
