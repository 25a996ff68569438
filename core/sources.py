"""The ``HostSource`` interface every source plugin implements.

A source owns a set of hosts (engines, SSH targets, agents). Each optional feature is
advertised through :class:`Capabilities` so the UI and the unified routes degrade
gracefully: an agent host is read-only, so it never gets action buttons or a terminal.
Host keys are the source-local ids; the public host id is ``"<source>:<key>"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from .containers import ContainerDetail, ContainerSummary, LogLine, Stats
from .errors import ApiError, NotFound

HostStatus = Literal["ok", "error", "stale", "unknown"]


class Capabilities(BaseModel):
    manage: bool = False
    exec: bool = False
    logs: bool = False
    stats: bool = False
    # The source streams its hosts' container events (``HostSource.events``): the core
    # watches each host and serves its lists from the live state cache.
    events: bool = False


class HostInfo(BaseModel):
    """One host as ``GET /api/hosts`` lists it."""

    id: str
    source: str
    name: str
    status: HostStatus = "unknown"
    error: str | None = None
    capabilities: Capabilities = Field(default_factory=Capabilities)
    # Source-specific facts for the UI (e.g. an agent's last_report_at).
    details: dict[str, Any] = Field(default_factory=dict)
    # When the containers shown for this host were read (ISO 8601 UTC), and how many
    # seconds ago: a watched host answers from the live cache, a dead one with its last
    # known containers. None: read just now (or never).
    updated_at: str | None = None
    data_age: float | None = None


@dataclass(frozen=True)
class LogOptions:
    """Which lines to read. ``tail``: lines from the end (None: all); ``since`` and
    ``until``: unix seconds, only lines at or after / at or before that time (None: no
    bound); ``timestamps``: give each line its time."""

    tail: int | None = 200
    timestamps: bool = False
    since: int | None = None
    until: int | None = None


class ExecSession:
    """An interactive TTY process inside a container, bridged to a WebSocket by the core."""

    async def read(self) -> bytes:
        """Next chunk of terminal output; ``b""`` when the process has ended."""
        raise NotImplementedError

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def resize(self, cols: int, rows: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """End the process (idempotent)."""
        raise NotImplementedError


class NotSupported(ApiError):
    status, code = 501, "not_supported"


class HostSource:
    """Base class of a source. Override what the source can do.

    ``name`` is the source id used in host ids and routes ("docker", "ssh", "agent");
    ``label`` is what the UI shows as the group title.
    """

    name: str = ""
    label: str = ""
    capabilities: Capabilities = Capabilities()
    # Set by the core to the name of the plugin that provided this source.
    plugin_name: str = ""

    def host_id(self, key: str | int) -> str:
        return f"{self.name}:{key}"

    async def start(self) -> None:
        """Open pools; called once when the app starts."""

    async def close(self) -> None:
        """Release pools; called once when the app stops."""

    async def list_hosts(self) -> list[HostInfo]:
        """Hosts this source knows (from its own storage; must not contact hosts)."""
        return []

    async def get_host(self, key: str) -> HostInfo:
        """The host ``key`` names, from the source's own storage (never contacting the
        host); ``NotFound`` with code ``unknown_host`` when there is none. Every route
        that names a host asks this first, so an unknown host is the same 404 on every
        URL tree. The default looks through ``list_hosts``; override it when a single
        lookup is cheaper."""
        host_id = self.host_id(key)
        for host in await self.list_hosts():
            if host.id == host_id:
                return host
        raise NotFound(f"unknown host {host_id!r}", code="unknown_host")

    async def probe(self, key: str) -> None:
        """Check the host answers; raise an ApiError describing why not."""

    async def list_containers(self, key: str, all: bool = False) -> list[ContainerSummary]:
        raise NotSupported(f"source {self.name!r} cannot list containers")

    async def get_container(self, key: str, ref: str) -> ContainerDetail:
        raise NotSupported(f"source {self.name!r} cannot inspect containers")

    async def logs(self, key: str, ref: str, options: LogOptions) -> list[LogLine]:
        raise NotSupported(f"source {self.name!r} has no logs")

    async def stream_logs(
        self, key: str, ref: str, options: LogOptions
    ) -> AsyncIterator[LogLine | None]:
        """Async generator: the lines of :meth:`logs`, read as they arrive and ending at
        the log's current end (the log download). Like :meth:`follow_logs` it yields
        ``None`` once the stream is open. The default reads :meth:`logs` whole; a source
        that can stream overrides it so a long log never sits in memory."""
        lines = await self.logs(key, ref, options)
        yield None
        for line in lines:
            yield line

    def follow_logs(self, key: str, ref: str, options: LogOptions) -> AsyncIterator[LogLine | None]:
        """Async generator: check the container exists (raise NotFound), yield ``None``
        once the stream is open, then the tail and every new line until it ends."""
        raise NotSupported(f"source {self.name!r} cannot follow logs")

    async def stats(self, key: str, ref: str) -> Stats | None:
        """One stats sample of container ``ref`` (None when it is not running). Kept
        apart from :meth:`get_container`, which answers from inspect alone so a detail
        never waits for a sample."""
        raise NotSupported(f"source {self.name!r} has no stats")

    async def stats_sample(self, key: str, ref: str) -> dict[str, Any] | None:
        """The engine's own stats document of container ``ref`` taken at once, without
        the second CPU reading :meth:`stats` waits for (Engine API
        ``/containers/{id}/stats?stream=false&one-shot=true``), as the engine gives it
        (for a container that stopped meanwhile, a document without processes). For
        the stats collector, which computes the CPU share from two of its own
        consecutive samples (``archnest.stats_between``): a sample then costs the
        engine milliseconds instead of a second or two. Sources that cannot raise
        ``NotSupported``, and the collector calls :meth:`stats` instead."""
        raise NotSupported(f"source {self.name!r} has no one-shot stats")

    def events(self, key: str) -> AsyncIterator[dict[str, Any] | None]:
        """Async generator over the host's container events, for sources with
        ``capabilities.events``: ``None`` once subscribed (the core lists the host after
        that, so nothing between subscribing and listing is lost), then each event as
        the Docker Engine's ``/events`` gives it (a dict with ``Type`` "container",
        ``Action``, ``Actor.ID``, ``Actor.Attributes``, ``time``). Returns when the stream
        ends and raises an ``ApiError`` when it fails; the core reconnects either way."""
        raise NotSupported(f"source {self.name!r} has no event stream")

    async def action(self, key: str, ref: str, action: str, *, force: bool = False) -> None:
        raise NotSupported(f"source {self.name!r} is read-only")

    async def exec(
        self, key: str, ref: str, cmd: list[str], *, cols: int = 80, rows: int = 24
    ) -> ExecSession:
        raise NotSupported(f"source {self.name!r} has no exec")
