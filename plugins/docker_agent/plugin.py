"""Hook implementations of the ``docker_agent`` plugin (entry point
``docker_agent = "archnest_docker_agent.plugin"``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from archnest import (
    DB_KEY,
    Assets,
    HostSource,
    MigrationLineage,
    NavItem,
    hookimpl,
    plugin_settings,
)

from . import __version__
from .enrollments import ENROLLMENTS_KEY, EnrollmentStore
from .page import PAGE_PATH, setup_page
from .routes import setup_routes
from .settings import AgentSettings
from .source import STORE_KEY, AgentHostSource
from .ssh_install import remote_command
from .store import ReportStore, sqlite_path
from .worker import WORKER_KEY, IngestWorker

HERE = Path(__file__).resolve().parent
log = logging.getLogger("archnest.docker_agent")


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    # Runs after the core's database context (so the table exists) and stops before
    # it; closing drains the writer, so no accepted report is dropped at shutdown.
    settings = plugin_settings(app, AgentSettings)
    try:
        remote_command(settings.ssh_install_root, settings.ssh_sudo)
    except ValueError as exc:  # a bad setting stops startup, naming the variable
        raise SystemExit(str(exc)) from None
    engine = app[DB_KEY].engine
    store = ReportStore(engine)
    await store.start()
    app[STORE_KEY] = store
    app[ENROLLMENTS_KEY] = EnrollmentStore(engine)
    worker = None
    if settings.ingest_worker:
        if sqlite_path(engine) is None:
            log.warning(
                "ARCHNEST_AGENT_INGEST_WORKER needs a SQLite database file; "
                "reports are stored in-process (with PostgreSQL, run replicas)"
            )
        else:
            worker = IngestWorker(engine.url.render_as_string(hide_password=False))
            await worker.start()
            app[WORKER_KEY] = worker
    try:
        yield
    finally:
        if worker is not None:  # first: it may still be storing accepted reports
            await worker.close()
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
    setup_page(app)


@hookimpl
def archnest_settings_nav() -> list[NavItem]:
    return [NavItem("Agents", PAGE_PATH, order=50)]


@hookimpl
def archnest_assets() -> Assets:
    return Assets("docker_agent", templates=HERE / "templates", static=HERE / "static")


@hookimpl
def archnest_migrations() -> MigrationLineage:
    return MigrationLineage("docker_agent", HERE / "migrations")


@hookimpl
def archnest_plugin_info() -> dict[str, Any]:
    return {
        "version": __version__,
        "sources": ["agent"],
        "tables": ["docker_agent_reports", "docker_agent_containers", "docker_agent_enrollments"],
    }


@hookimpl
def archnest_plugin_settings() -> type[AgentSettings]:
    return AgentSettings
