"""Hook implementations of the ``docker_ssh`` plugin (entry point
``docker_ssh = "archnest_docker_ssh.plugin"``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from archnest import (
    SOURCES_KEY,
    HostInfo,
    HostSource,
    MigrationLineage,
    add_container_routes,
    hookimpl,
    operation,
)

from . import __version__
from .settings import DockerSshSettings
from .source import SshDockerSource
from .targets import DockerSshTargetFields

PREFIX = "/api/docker-ssh"


@operation("Docker hosts reached over SSH", responses={200: list[HostInfo]})
async def list_hosts(request: web.Request) -> web.Response:
    source = request.app[SOURCES_KEY].get(SshDockerSource.name)
    hosts = await source.list_hosts() if source is not None else []
    return web.json_response([h.model_dump(mode="json") for h in hosts])


@hookimpl
def archnest_host_sources(app: web.Application) -> list[HostSource]:
    return [SshDockerSource(app)]


@hookimpl
def archnest_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/hosts", list_hosts)
    add_container_routes(
        app, PREFIX + "/hosts/{id}", SshDockerSource.name, exec_path=PREFIX + "/exec"
    )


@hookimpl
def archnest_plugin_info() -> dict[str, Any]:
    return {"version": __version__, "sources": ["ssh"], "tables": ["docker_ssh_targets"]}


@hookimpl
def archnest_migrations() -> MigrationLineage:
    return MigrationLineage("docker_ssh", Path(__file__).resolve().parent / "migrations")


@hookimpl
def archnest_ssh_target_fields() -> DockerSshTargetFields:
    # ``docker`` and ``sudo`` of every target, in this plugin's own table.
    return DockerSshTargetFields()


@hookimpl
def archnest_plugin_settings() -> type[DockerSshSettings]:
    return DockerSshSettings
