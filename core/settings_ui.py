"""The Settings area: admin-only pages, one per section, around one side navigation.

Sections come from the ``archnest_settings_nav`` hook (the core's own and the plugins');
each section is its owner's route, decorated ``@admin_only`` and extending
``core/settings_base.html``. The pages are shells: their scripts read and change
everything through the same JSON API scripts use, so the page and the API cannot drift.
"""

from __future__ import annotations

from aiohttp import web

from .auth import admin_only
from .openapi import operation
from .web import settings_nav


@admin_only
@operation("The Settings area: its first section", tags=("ui",), responses={302: None})
async def settings_index(request: web.Request) -> web.Response:
    sections = settings_nav(request)
    raise web.HTTPFound(sections[0].href if sections else "/containers")


def setup_settings_ui(app: web.Application) -> None:
    app.router.add_get("/settings", settings_index)
