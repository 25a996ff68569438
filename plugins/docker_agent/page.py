"""Settings > Agents: enroll agent hosts, show their tokens once, revoke, re-issue, and
install the agent over SSH.

The page is a shell: its script (static/agents.js) does everything through the JSON API
(``/api/agents/docker/enrollments``, ``.../ssh-install``, ``/api/ssh/targets``), so the
page can do nothing the API cannot, and no token is ever rendered into it.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from archnest import Content, admin_only, operation, plugin_settings

from .settings import AgentSettings

PAGE_PATH = "/settings/agents"
PAGE = Content("text/html", None, "An HTML page.")


@admin_only
@operation("Settings: agents", tags=("ui",), responses={200: PAGE})
@aiohttp_jinja2.template("docker_agent/settings_agents.html")
async def agents_page(request: web.Request) -> dict[str, Any]:
    settings = plugin_settings(request.app, AgentSettings)
    return {
        "shared_token": bool(settings.token),
        "stale_seconds": settings.stale_seconds,
    }


def setup_page(app: web.Application) -> None:
    app.router.add_get(PAGE_PATH, agents_page)
