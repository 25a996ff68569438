"""The "SSH targets" section of the Settings area (``/settings/ssh``).

A shell: core/static/settings-ssh.js reads and changes everything through the same JSON
API scripts use (``/api/ssh/...``), so the page can do nothing the API cannot.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ..auth import admin_only
from ..openapi import Content, operation

PAGE = Content("text/html", None, "An HTML page.")


@admin_only
@operation("Settings: SSH targets", tags=("ui",), responses={200: PAGE})
@aiohttp_jinja2.template("core/settings_ssh.html")
async def settings_ssh(request: web.Request) -> dict[str, Any]:
    return {}


def setup_settings_page(app: web.Application) -> None:
    app.router.add_get("/settings/ssh", settings_ssh)
