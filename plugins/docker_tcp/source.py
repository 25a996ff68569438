"""Source ``docker``: the ``HostSource`` over configured Docker Engine API endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
from aiohttp import web
from archnest import (
    DB_KEY,
    SECRETS_KEY,
    SETTINGS_KEY,
    ApiError,
    BadRequest,
    Capabilities,
    Conflict,
    ContainerDetail,
    ContainerSummary,
    ExecSession,
    HostError,
    HostInfo,
    HostSource,
    LogLine,
    LogOptions,
    NotFound,
    Stats,
    detail_from_inspect,
    parse_row_id,
    plugin_settings,
    stats_from_engine,
    summary_from_engine_list,
    validate_ref,
)

from .client import ClientPool, EngineConfig, close_quietly, engine_errors, make_client
from .events import engine_events
from .execs import DockerExecSession
from .logs import stream_lines
from .settings import DockerTcpSettings
from .store import EngineStore
from .tlsconf import TlsMaterialError

log = logging.getLogger("archnest.docker_tcp")

CAPABILITIES = Capabilities(manage=True, exec=True, logs=True, stats=True, events=True)
LOCAL_FLAG = "local_socket_added"
# Engine rows change rarely; a short cache spares a database round trip per request
# while an edit made through another replica is still seen within a few seconds.
CONFIG_TTL = 3.0
# Engine ids are database integers (PostgreSQL INTEGER: 32-bit signed).


async def engine_facts(client: aiodocker.Docker) -> dict[str, Any]:
    """Versions and counts of the engine behind ``client`` (two calls, side by side)."""
    version, info = await asyncio.gather(client.version(), client.system.info())
    return {
        "engine_version": version.get("Version"),
        "api_version": version.get("ApiVersion"),
        "negotiated_api_version": client.api_version.lstrip("v"),
        "min_api_version": version.get("MinAPIVersion"),
        "os": version.get("Os"),
        "arch": version.get("Arch"),
        "kernel_version": version.get("KernelVersion"),
        "hostname": info.get("Name"),
        "containers": info.get("Containers"),
        "running": info.get("ContainersRunning"),
        "paused": info.get("ContainersPaused"),
        "stopped": info.get("ContainersStopped"),
        "images": info.get("Images"),
        "cpus": info.get("NCPU"),
        "mem_total_bytes": info.get("MemTotal"),
    }


def parse_engine_id(raw: str) -> int:
    """An engine id from a path or query, or 404 (never a 500 on odd input)."""
    return parse_row_id(raw, "docker host")


class DockerEngineSource(HostSource):
    name = "docker"
    label = "Docker Engine API"
    capabilities = CAPABILITIES

    def __init__(self, app: web.Application):
        self.app = app
        self.pool: ClientPool | None = None
        self._store: EngineStore | None = None
        self._configs: dict[int, tuple[float, EngineConfig]] = {}

    @property
    def store(self) -> EngineStore:
        if self._store is None:
            self._store = EngineStore(self.app[DB_KEY], self.app[SECRETS_KEY])
        return self._store

    async def start(self) -> None:
        self.pool = ClientPool(connect_timeout=self.app[SETTINGS_KEY].host_timeout)
        try:
            await self.add_local_engine()
        except Exception as exc:  # a local socket problem must not stop the app
            log.warning("could not add the local docker socket: %r", exc)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def add_local_engine(self) -> None:
        """Add the local socket as ``local`` once; a removed ``local`` stays removed."""
        settings = plugin_settings(self.app, DockerTcpSettings)
        if not settings.add_local_docker or await self.store.flag(LOCAL_FLAG):
            return
        path = settings.local_docker_socket
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            return
        if not is_socket or not os.access(path, os.R_OK | os.W_OK):
            return
        with contextlib.suppress(Conflict):  # another replica (or an admin) was first
            await self.store.create({"name": "local", "url": f"unix://{path}"})
        await self.store.set_flag(LOCAL_FLAG, "1")

    # ---- engines ------------------------------------------------------------------
    def forget(self, engine_id: int) -> None:
        self._configs.pop(engine_id, None)

    async def config(self, key: str) -> EngineConfig:
        engine_id = parse_engine_id(key)
        cached = self._configs.get(engine_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CONFIG_TTL:
            return cached[1]
        cfg = self.store.config(await self.store.get(engine_id))
        self._configs[engine_id] = (now, cfg)
        return cfg

    async def engine(self, key: str) -> tuple[EngineConfig, aiodocker.Docker]:
        cfg = await self.config(key)
        assert self.pool is not None, "source not started"
        return cfg, await self.pool.get(cfg)

    async def drop(self, engine_id: int) -> None:
        self.forget(engine_id)
        if self.pool is not None:
            await self.pool.drop(engine_id)

    async def list_hosts(self) -> list[HostInfo]:
        return [
            HostInfo(
                id=self.host_id(row.id or 0),
                source=self.name,
                name=row.name,
                capabilities=CAPABILITIES,
                details={"url": row.url},
            )
            for row in await self.store.all()
        ]

    async def get_host(self, key: str) -> HostInfo:
        cfg = await self.config(key)  # 404 unknown_host; cached for a few seconds
        return HostInfo(
            id=self.host_id(cfg.id),
            source=self.name,
            name=cfg.name,
            capabilities=CAPABILITIES,
            details={"url": cfg.url},
        )

    async def probe(self, key: str) -> None:
        cfg, client = await self.engine(key)
        with engine_errors(cfg, "probe"):
            await client.version()

    async def info(self, key: str) -> dict[str, Any]:
        cfg, client = await self.engine(key)
        with engine_errors(cfg, "info"):
            facts = await engine_facts(client)
        return {"host_id": self.host_id(cfg.id), "name": cfg.name, **facts}

    async def check(self, cfg: EngineConfig) -> dict[str, Any]:
        """Connect with ``cfg`` (settings not saved yet, or an edit being tried) on a
        client of its own, never the pooled one, and read what ``info`` reads; the
        connection is closed whatever happens. Call it under ``with_timeout``."""
        try:
            client = make_client(cfg, self.app[SETTINGS_KEY].host_timeout)
        except TlsMaterialError as exc:
            raise BadRequest(f"tls: {exc}", field=exc.field) from None
        except ValueError as exc:
            raise BadRequest(str(exc), field="url") from None
        try:
            with engine_errors(cfg, "test"):
                return await engine_facts(client)
        except NotFound:
            # Something answered HTTP on that address, but not the Engine API.
            raise HostError(
                f"{cfg.url} answered, but not as a Docker engine (no /version there)",
                code="engine_error",
            ) from None
        finally:
            await close_quietly(client)

    # ---- containers ---------------------------------------------------------------
    async def list_containers(self, key: str, all: bool = False) -> list[ContainerSummary]:
        cfg, client = await self.engine(key)
        host_id = self.host_id(cfg.id)
        with engine_errors(cfg, "list"):
            items = await client.containers.list(all=all)
        return [summary_from_engine_list(c._container, host_id) for c in items]

    async def _inspect(self, cfg: EngineConfig, client: aiodocker.Docker, ref: str) -> dict:
        try:
            with engine_errors(cfg, "inspect"):
                return await client.containers.container(ref).show()
        except NotFound:
            raise NotFound(
                f"no container {ref!r} on docker host {cfg.name!r}", code="unknown_container"
            ) from None

    async def get_container(self, key: str, ref: str) -> ContainerDetail:
        # Inspect alone: the stats sample takes the engine a second or more (see stats).
        cfg, client = await self.engine(key)
        data = await self._inspect(cfg, client, ref)
        return detail_from_inspect(data, self.host_id(cfg.id), None)

    async def stats(self, key: str, ref: str) -> Stats | None:
        cfg, client = await self.engine(key)
        data = await self._inspect(cfg, client, ref)
        if not (data.get("State") or {}).get("Running"):
            return None
        # One sample computed the way `docker stats` does: the engine waits for a second
        # reading to fill precpu, which is what makes cpu_percent possible (and slow).
        try:
            with engine_errors(cfg, "stats"):
                samples = await client.containers.container(data["Id"]).stats(stream=False)
        except ApiError:
            # Stopped or removed during the sample: say so (None, or 404 when gone).
            if not ((await self._inspect(cfg, client, ref)).get("State") or {}).get("Running"):
                return None
            raise
        return stats_from_engine(samples[0] if samples else None)

    async def stats_sample(self, key: str, ref: str) -> dict[str, Any] | None:
        # No inspect first: the collector samples containers the live state lists as
        # running, and skips a document without processes (one that stopped meanwhile).
        validate_ref(ref)
        cfg, client = await self.engine(key)
        with engine_errors(cfg, "stats"):
            data = await client._query_json(
                f"containers/{ref}/stats", params={"stream": "false", "one-shot": "true"}
            )
        return data if isinstance(data, dict) else None

    async def events(self, key: str) -> AsyncIterator[dict[str, Any] | None]:
        cfg, client = await self.engine(key)
        with engine_errors(cfg, "events"):
            async for event in engine_events(client):
                yield event

    async def logs(self, key: str, ref: str, options: LogOptions) -> list[LogLine]:
        out: list[LogLine] = []
        async for line in self._lines(key, ref, options, follow=False):
            if line is not None:
                out.append(line)
        return out

    def stream_logs(self, key: str, ref: str, options: LogOptions) -> AsyncIterator[LogLine | None]:
        return self._lines(key, ref, options, follow=False)

    def follow_logs(self, key: str, ref: str, options: LogOptions) -> AsyncIterator[LogLine | None]:
        return self._lines(key, ref, options, follow=True)

    async def _lines(
        self, key: str, ref: str, options: LogOptions, follow: bool
    ) -> AsyncIterator[LogLine | None]:
        cfg, client = await self.engine(key)
        data = await self._inspect(cfg, client, ref)
        tty = bool((data.get("Config") or {}).get("Tty"))
        with engine_errors(cfg, "logs"):
            async for line in stream_lines(client, data["Id"], tty, options, follow):
                yield line

    async def action(self, key: str, ref: str, action: str, *, force: bool = False) -> None:
        cfg, client = await self.engine(key)
        container = client.containers.container(ref)
        # stop/restart must finish inside the request timeout: the engine's grace period
        # is capped just below it (SIGKILL follows, as with `docker stop -t`).
        grace = max(1, int(self.app[SETTINGS_KEY].host_timeout) - 2)
        with engine_errors(cfg, action):
            if action == "start":
                await container.start()
            elif action == "stop":
                await container.stop(t=grace)
            elif action == "restart":
                await container.restart(t=grace)
            elif action == "pause":
                await container.pause()
            elif action == "unpause":
                await container.unpause()
            elif action == "kill":
                await container.kill()
            elif action == "remove":
                await container.delete(force=force)
            else:
                raise BadRequest(f"unknown action {action!r}")

    async def exec(
        self, key: str, ref: str, cmd: list[str], *, cols: int = 80, rows: int = 24
    ) -> ExecSession:
        cfg, client = await self.engine(key)
        data = await self._inspect(cfg, client, ref)
        if not (data.get("State") or {}).get("Running"):
            raise Conflict(f"container {ref!r} is not running", code="not_running")
        with engine_errors(cfg, "exec"):
            return await DockerExecSession.start(client, data["Id"], cmd, cols, rows)
