"""Hook implementations of the ``docker_agent`` plugin (entry point
``docker_agent = "archnest_docker_agent.plugin"``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from archnest import DB_KEY, HostSource, MigrationLineage, hookimpl

from . import __version__
from .routes import setup_routes
from .settings import AgentSettings
from .source import STORE_KEY, AgentHostSource
from .store import ReportStore


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    # Runs after the core's database context (so the table exists) and stops before
    # it; closing drains the writer, so no accepted report is dropped at shutdown.
    store = ReportStore(app[DB_KEY].engine)
    await store.start()
    app[STORE_KEY] = store
    try:
        yield
    finally:
        await store.close()


@hookimpl
def archnest_cleanup_ctx(
    app: web.Application,
) -> Callable[[web.Application], AsyncIterator[None]]:
    return _store_ctx


@hookimpl
def archnest_host_sources(app: web.Application) -> list[HostSource]:
    return [AgentHostSource(app)]


@hookimpl
def archnest_routes(app: web.Application) -> None:
    setup_routes(app)


@hookimpl
def archnest_migrations() -> MigrationLineage:
    return MigrationLineage("docker_agent", Path(__file__).resolve().parent / "migrations")


@hookimpl
def archnest_plugin_info() -> dict[str, Any]:
    return {"version": __version__, "sources": ["agent"], "tables": ["docker_agent_reports"]}


@hookimpl
def archnest_plugin_settings() -> type[AgentSettings]:
    return AgentSettings
