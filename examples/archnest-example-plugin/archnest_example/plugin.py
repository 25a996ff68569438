"""Hook implementations (entry point ``example = "archnest_example.plugin"``).

Imports only from ``archnest`` (the public API) and from this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from archnest import (
    Assets,
    ContainerDetail,
    HostInfo,
    MigrationLineage,
    NavItem,
    Panel,
    hookimpl,
)

from . import __version__
from .models import TABLE
from .routes import setup_routes

HERE = Path(__file__).resolve().parent


@hookimpl
def archnest_routes(app: web.Application) -> None:
    setup_routes(app)


@hookimpl
def archnest_migrations() -> MigrationLineage:
    return MigrationLineage(name="example", versions_dir=HERE / "migrations")


@hookimpl
def archnest_assets() -> Assets:
    # Templates are addressed as "example/<file>", static files as /static/example/<file>.
    return Assets(namespace="example", templates=HERE / "templates", static=HERE / "static")


@hookimpl
def archnest_nav_items(request: web.Request) -> list[NavItem]:
    return [NavItem(title="Notes", href="/example/notes", order=50)]


@hookimpl
def archnest_container_panels(
    request: web.Request, host: HostInfo, container: ContainerDetail
) -> list[Panel]:
    # Hooks are synchronous, so the panel loads its rows itself (one htmx GET).
    return [
        Panel(
            id="example-notes",
            title="Notes",
            template="example/panel.html",
            context={"host_id": host.id, "container": container.name or container.id},
        )
    ]


@hookimpl
def archnest_plugin_info() -> dict[str, Any]:
    return {"version": __version__, "tables": [TABLE], "routes": ["/api/example/notes"]}
