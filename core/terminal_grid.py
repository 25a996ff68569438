"""The Terminals page: a grid of exec sessions on containers of any hosts.

The page only renders a frame; core/static/terminals.js opens every terminal on the
same exec WebSocket as the container detail tab (core/exec_bridge.py), so each one is
its own session, recorded and audited there, and admin-only like it.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from .auth import current_user
from .exec_bridge import SHELLS
from .openapi import Content, operation


@operation(
    "The Terminals page: several container terminals side by side",
    description="Viewers may open it but are told that terminals need the admin role; "
    "the grid is kept in the address (`?t=HOST/CONTAINER/SHELL`, repeated; `cols`), "
    "its sessions are new on each load.",
    tags=("ui",),
    responses={200: Content("text/html", None, "An HTML page.")},
)
@aiohttp_jinja2.template("core/terminals.html")
async def terminals_page(request: web.Request) -> dict[str, Any]:
    user = current_user(request)
    # The exec WebSocket is admin-only whatever its method (auth.websocket): a viewer
    # gets the explanation instead of controls that could only fail.
    return {"can_exec": bool(user and user.role == "admin"), "shells": tuple(SHELLS)}


def setup_terminal_grid_routes(app: web.Application) -> None:
    app.router.add_get("/terminals", terminals_page)
