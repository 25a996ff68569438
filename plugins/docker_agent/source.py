"""The read-only ``HostSource`` for agent hosts: everything comes from stored reports."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from archnest import (
    Capabilities,
    ContainerDetail,
    ContainerSummary,
    HostInfo,
    HostSource,
    NotFound,
    Stats,
    iso_utc,
    plugin_settings,
)

from .normalise import LISTED_BY_DEFAULT, find_container, summary, with_stats
from .settings import AgentSettings
from .store import HostRow, ReportStore, utc_naive

STORE_KEY = web.AppKey("archnest_docker_agent_store", ReportStore)
CAPABILITIES = Capabilities(manage=False, exec=False, logs=False, stats=True)


def host_entry(row: HostRow, stale_seconds: int) -> dict[str, Any]:
    """A ``GET /api/agents/docker/hosts`` item (docs/api.md) (plus a few extra facts)."""
    return {
        "host": row.host,
        "last_report_at": iso_utc(row.received_at),
        "stale": row.is_stale(stale_seconds),
        "container_count": row.container_count,
        "agent_version": row.agent_version,
        "running_count": row.running_count,
        "reported_at": iso_utc(row.reported_at),
        "report_count": row.report_count,
    }


class AgentHostSource(HostSource):
    """Source ``agent``: hosts are whatever reported; nothing is ever contacted."""

    name = "agent"
    label = "Push agents"
    capabilities = CAPABILITIES

    def __init__(self, app: web.Application):
        self._app = app

    @property
    def store(self) -> ReportStore:
        return self._app[STORE_KEY]

    @property
    def stale_seconds(self) -> int:
        return plugin_settings(self._app, AgentSettings).stale_seconds

    def _info(self, row: HostRow, now: Any) -> HostInfo:
        stale = self.stale_seconds
        return HostInfo(
            id=self.host_id(row.host),
            source=self.name,
            name=row.host,
            status="stale" if row.is_stale(stale, now) else "ok",
            error=None,
            capabilities=CAPABILITIES,
            details=host_entry(row, stale),
        )

    async def list_hosts(self) -> list[HostInfo]:
        now = utc_naive()
        return [self._info(row, now) for row in await self.store.hosts()]

    async def get_host(self, key: str) -> HostInfo:
        row = await self.store.host(key)
        if row is None:
            raise NotFound(f"no report from agent host {key!r}", code="unknown_host")
        return self._info(row, utc_naive())

    async def probe(self, key: str) -> None:
        # Nothing to contact: the host pushes. Existence is what can be checked.
        if await self.store.host(key) is None:
            raise NotFound(f"no report from agent host {key!r}", code="unknown_host")

    async def containers(self, key: str) -> list[dict[str, Any]]:
        """The normalised containers of the latest report (plain dicts)."""
        report = await self.store.report(key)
        if report is None:
            raise NotFound(f"no report from agent host {key!r}", code="unknown_host")
        return with_stats(report["containers_json"], report["stats_json"])

    async def list_containers(self, key: str, all: bool = False) -> list[ContainerSummary]:
        items = await self.containers(key)
        return [
            ContainerSummary(**summary(c)) for c in items if all or c["state"] in LISTED_BY_DEFAULT
        ]

    async def _find(self, key: str, ref: str) -> dict[str, Any]:
        found = find_container(await self.containers(key), ref)
        if found is None:
            raise NotFound(f"no container {ref!r} on agent host {key!r}", code="unknown_container")
        return found

    async def get_container(self, key: str, ref: str) -> ContainerDetail:
        # The detail keeps the report's stats sample: unlike the docker and ssh sources,
        # where a sample costs the host a second or more, here it is already stored.
        return ContainerDetail(**await self._find(key, ref))

    async def stats(self, key: str, ref: str) -> Stats | None:
        """The sample of the host's last report (None when the container was not up
        then, as Docker's ``State.Running``: running, paused or restarting; or when the
        agent sent no sample for it)."""
        found = await self._find(key, ref)
        sample = found.get("stats")
        if sample is None or found.get("state") not in LISTED_BY_DEFAULT:
            return None
        return Stats(**sample)
