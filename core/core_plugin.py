"""Core routes, registered through the same hooks as any plugin."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from .account_routes import setup_account_routes
from .alert_routes import setup_alert_routes
from .audit_routes import setup_audit_routes
from .auth import public
from .diff import setup_diff_routes
from .hosts import setup_unified_routes
from .keys import PM_KEY, SOURCES_KEY
from .log_search import setup_log_search_routes
from .metrics import setup_metrics_routes
from .oidc_routes import setup_oidc_routes
from .openapi import operation, setup_openapi
from .plugin_types import Assets, NavItem
from .plugins import hookimpl, loaded_plugins
from .projects import setup_project_routes
from .recording_routes import setup_recording_routes
from .settings_ui import setup_settings_ui
from .terminal_grid import setup_terminal_grid_routes
from .ui import setup_ui_routes
from .web import HERE, setup_auth_routes


class Health(BaseModel):
    status: Literal["ok"]


class PluginEntry(BaseModel):
    name: str
    module: str
    version: str | None
    distribution: str | None
    core: bool
    sources: list[str]
    info: dict[str, Any]


@public
@operation("Liveness: the process answers", tags=("meta",), responses={200: Health})
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@operation(
    "Loaded plugins, their versions and the sources they provide",
    tags=("meta",),
    responses={200: list[PluginEntry]},
)
async def plugins_index(request: web.Request) -> web.Response:
    pm = request.app[PM_KEY]
    sources = request.app[SOURCES_KEY]
    out = []
    for p in loaded_plugins(pm):
        module = pm.get_plugin(p.name)
        info_hook = getattr(module, "archnest_plugin_info", None)
        info = info_hook() if callable(info_hook) else None
        provided = [s.name for s in sources.values() if s.plugin_name == p.name]
        out.append(
            {
                "name": p.name,
                "module": p.module,
                "version": p.version,
                "distribution": p.distribution,
                "core": p.core,
                "sources": provided,
                "info": info or {},
            }
        )
    return web.json_response(out)


@hookimpl
def archnest_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/plugins", plugins_index)
    setup_auth_routes(app)
    setup_oidc_routes(app)
    setup_account_routes(app)
    setup_unified_routes(app)
    setup_diff_routes(app)
    setup_log_search_routes(app)
    setup_project_routes(app)
    setup_terminal_grid_routes(app)
    setup_ui_routes(app)
    setup_settings_ui(app)
    setup_audit_routes(app)
    setup_alert_routes(app)
    setup_recording_routes(app)
    setup_metrics_routes(app)
    setup_openapi(app)


@hookimpl
def archnest_nav_items() -> list[NavItem]:
    return [
        NavItem("Containers", "/containers", order=10),
        NavItem("Projects", "/projects", order=15),
        NavItem("Log search", "/logs/search", order=17),
        NavItem("Terminals", "/terminals", order=18, admin_only=True),
        NavItem("Settings", "/settings", order=90, admin_only=True),
        NavItem("Account", "/account", order=95),
    ]


@hookimpl
def archnest_settings_nav() -> list[NavItem]:
    # The core's own sections; plugins add theirs (Docker engines, Agents, ...).
    return [
        NavItem("SSH targets", "/settings/ssh", order=30),
        NavItem("Alerts", "/settings/alerts", order=70),
        NavItem("Users", "/settings/users", order=80),
        NavItem("Audit log", "/settings/audit", order=85),
        NavItem("Recordings", "/settings/recordings", order=86),
    ]


@hookimpl
def archnest_assets() -> Assets:
    # The core's own templates are loaded directly; this exposes them to plugins too.
    return Assets("archnest", templates=HERE / "templates" / "core")
