"""Hook implementations of the ``docker_tcp`` plugin (entry point
``docker_tcp = "archnest_docker_tcp.plugin"``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from archnest import Assets, HostSource, MigrationLineage, NavItem, hookimpl

from . import __version__
from .page import settings_nav_items, setup_page
from .routes import setup_routes
from .settings import DockerTcpSettings
from .source import DockerEngineSource

HERE = Path(__file__).resolve().parent


@hookimpl
def archnest_host_sources(app: web.Application) -> list[HostSource]:
    return [DockerEngineSource(app)]


@hookimpl
def archnest_routes(app: web.Application) -> None:
    setup_routes(app)
    setup_page(app)


@hookimpl
def archnest_settings_nav() -> list[NavItem]:
    return settings_nav_items()


@hookimpl
def archnest_assets() -> Assets:
    return Assets("docker_tcp", templates=HERE / "templates", static=HERE / "static")


@hookimpl
def archnest_migrations() -> MigrationLineage:
    return MigrationLineage("docker_tcp", HERE / "migrations")


@hookimpl
def archnest_plugin_info() -> dict[str, Any]:
    return {
        "version": __version__,
        "sources": ["docker"],
        "tables": ["docker_tcp_engines", "docker_tcp_flags"],
    }


@hookimpl
def archnest_plugin_settings() -> type[DockerTcpSettings]:
    return DockerTcpSettings
