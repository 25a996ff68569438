"""Settings > Docker engines: the page that adds, edits, tests and removes engines.

The page is a shell: its script (static/engines.js) does everything through the same
JSON API scripts use (``/api/docker/hosts``, ``.../test``), so nothing the page can do
is missing from the API, and no credential is ever rendered into it.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from archnest import Content, NavItem, admin_only, operation

PAGE_PATH = "/settings/engines"
PAGE = Content("text/html", None, "An HTML page.")


def settings_nav_items() -> list[NavItem]:
    return [NavItem("Docker engines", PAGE_PATH, order=20)]


@admin_only
@operation("Settings: Docker engines", tags=("ui",), responses={200: PAGE})
@aiohttp_jinja2.template("docker_tcp/settings_engines.html")
async def engines_page(request: web.Request) -> dict[str, Any]:
    return {}


def setup_page(app: web.Application) -> None:
    app.router.add_get(PAGE_PATH, engines_page)
