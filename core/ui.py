"""Server-rendered pages of the Containers UI."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/containers")


@aiohttp_jinja2.template("core/home.html")
async def containers_page(request: web.Request) -> dict[str, Any]:
    return {}


def setup_ui_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/containers", containers_page)
