"""Core routes, registered through the same hooks as any plugin."""

from __future__ import annotations

from aiohttp import web

from .auth import public
from .hosts import setup_unified_routes
from .keys import PM_KEY, SOURCES_KEY
from .plugin_types import Assets, NavItem
from .plugins import hookimpl, loaded_plugins
from .ui import setup_ui_routes
from .web import HERE, setup_auth_routes


@public
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


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
    setup_unified_routes(app)
    setup_ui_routes(app)


@hookimpl
def archnest_nav_items() -> list[NavItem]:
    return [NavItem("Containers", "/containers", order=10)]


@hookimpl
def archnest_assets() -> Assets:
    # The core's own templates are loaded directly; this exposes them to plugins too.
    return Assets("archnest", templates=HERE / "templates" / "core")
