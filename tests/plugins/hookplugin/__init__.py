"""A test-only plugin that implements every hook, so each hook can be exercised
through a real app (``create_app(settings, extra_plugins=[HookPlugin()])``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from archnest import (
    Assets,
    Capabilities,
    ContainerDetail,
    ContainerSummary,
    HostInfo,
    HostSource,
    MigrationLineage,
    NavItem,
    NotFound,
    Panel,
    PluginSettings,
    admin_only,
    env_setting,
    hookimpl,
)

HERE = Path(__file__).resolve().parent
NAMESPACE = "hooktest"


class MemorySource(HostSource):
    """A read-only source over an in-memory host; records its lifecycle."""

    name = "hooktest"
    label = "Hook test"
    capabilities = Capabilities(logs=False)

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.containers = {
            "web": ContainerSummary(
                id="a" * 64,
                name="web",
                image="archnest-test/busybox:1",
                state="running",
                status="Up 1 minute",
                created="2026-11-27T00:00:00Z",
                host_id="hooktest:one",
            )
        }

    async def start(self) -> None:
        self.events.append("source-start")

    async def close(self) -> None:
        self.events.append("source-close")

    async def list_hosts(self) -> list[HostInfo]:
        return [HostInfo(id=self.host_id("one"), source=self.name, name="memory host")]

    async def list_containers(self, key: str, all: bool = False) -> list[ContainerSummary]:
        if key != "one":
            raise NotFound(f"unknown host {key!r}")
        return list(self.containers.values())

    async def get_container(self, key: str, ref: str) -> ContainerDetail:
        summary = self.containers.get(ref)
        if key != "one" or summary is None:
            raise NotFound(f"no container {ref!r}")
        return ContainerDetail(**summary.model_dump())


@dataclass(frozen=True)
class HookSettings(PluginSettings):
    """One field of each supported type."""

    greeting: str = env_setting("ARCHNEST_HOOKTEST_GREETING", "hello")
    note: str | None = env_setting("ARCHNEST_HOOKTEST_NOTE", None, secret=True)
    limit: int = env_setting("ARCHNEST_HOOKTEST_LIMIT", 3, minimum=1)
    ratio: float = env_setting("ARCHNEST_HOOKTEST_RATIO", 0.5, minimum=0)
    enabled: bool = env_setting("ARCHNEST_HOOKTEST_ENABLED", False)


class HookPlugin:
    """Every hook of ``archnest.hookspecs``; ``events`` records what the app did."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.__name__ = "hookplugin"

    @hookimpl
    def archnest_host_sources(self, app: web.Application) -> list[HostSource]:
        return [MemorySource(self.events)]

    @hookimpl
    def archnest_routes(self, app: web.Application) -> None:
        async def read(request: web.Request) -> web.Response:
            return web.json_response({"read": True})

        async def write(request: web.Request) -> web.Response:
            return web.json_response({"written": True})

        @aiohttp_jinja2.template(f"{NAMESPACE}/page.html")
        async def page(request: web.Request) -> dict[str, Any]:
            return {"word": "namespaced"}

        app.router.add_get("/api/hooktest/items", read)
        app.router.add_post("/api/hooktest/items", write)

        @admin_only
        @aiohttp_jinja2.template(f"{NAMESPACE}/settings.html")
        async def settings_page(request: web.Request) -> dict[str, Any]:
            return {}

        app.router.add_get("/hooktest/page", page)
        app.router.add_get("/settings/hooktest", settings_page)

    @hookimpl
    def archnest_cleanup_ctx(self, app: web.Application):  # type: ignore[no-untyped-def]
        events = self.events

        async def ctx(app: web.Application) -> AsyncIterator[None]:
            events.append("ctx-start")
            yield
            events.append("ctx-stop")

        return ctx

    @hookimpl
    def archnest_migrations(self) -> MigrationLineage:
        return MigrationLineage(name="hooktest", versions_dir=HERE / "migrations")

    @hookimpl
    def archnest_assets(self) -> Assets:
        return Assets(NAMESPACE, templates=HERE / "templates", static=HERE / "static")

    @hookimpl
    def archnest_nav_items(self, request: web.Request) -> list[NavItem]:
        return [
            NavItem("Hook test", "/hooktest/page", order=90),
            NavItem("Hook admin", "/hooktest/admin", order=91, admin_only=True),
        ]

    @hookimpl
    def archnest_settings_nav(self, request: web.Request) -> list[NavItem]:
        return [NavItem("Hook settings", "/settings/hooktest", order=95)]

    @hookimpl
    def archnest_container_panels(
        self, request: web.Request, host: HostInfo, container: ContainerDetail
    ) -> list[Panel]:
        self.events.append(f"panels:{host.id}:{container.name}")
        return [
            Panel(
                id="hooktest-panel",
                title="Hook tab",
                template=f"{NAMESPACE}/panel.html",
                context={"container_name": container.name},
            )
        ]

    @hookimpl
    def archnest_plugin_info(self) -> dict[str, Any]:
        return {"purpose": "hook tests", "tables": ["hooktest_items"]}

    @hookimpl
    def archnest_plugin_settings(self) -> type[PluginSettings]:
        return HookSettings
