"""One test per hook of ``archnest.hookspecs``, each through a real, started app.

Test names are ``test_<hook name>...``: the contract test (test_contract.py) looks for
them, so a hook added without a test of its own fails the suite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from archnest import (
    DB_KEY,
    PM_KEY,
    SOURCES_KEY,
    PluginSettings,
    Settings,
    create_app,
    env_setting,
    plugin_settings,
)

from .hookplugin import HookPlugin, HookSettings


async def test_archnest_host_sources(
    archnest_client: TestClient,
    hook_plugin: HookPlugin,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
) -> None:
    # The source was started with the app and is reachable through the unified routes.
    assert "source-start" in hook_plugin.events
    assert archnest_client.app[SOURCES_KEY]["hooktest"].plugin_name == "hookplugin"
    hosts = await (await archnest_client.get("/api/hosts", headers=viewer_headers)).json()
    mine = [h for h in hosts if h["source"] == "hooktest"]
    assert mine == [
        {
            "id": "hooktest:one",
            "source": "hooktest",
            "name": "memory host",
            "status": "ok",
            "error": None,
            "capabilities": {
                "manage": False,
                "exec": False,
                "logs": False,
                "stats": False,
                "events": False,
            },
            "details": {},
            "updated_at": None,
            "data_age": None,
        }
    ]
    resp = await archnest_client.get("/api/hosts/hooktest:one/containers", headers=viewer_headers)
    assert resp.status == 200
    assert [c["name"] for c in await resp.json()] == ["web"]
    # Capabilities are honoured: a read-only source refuses actions, even for an admin.
    resp = await archnest_client.post(
        "/api/hosts/hooktest:one/containers/web/stop", headers=admin_headers
    )
    assert resp.status == 501
    assert (await resp.json())["error"]["code"] == "not_supported"
    await archnest_client.close()
    assert "source-close" in hook_plugin.events


async def test_archnest_routes(
    archnest_client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    # The route table decides who may call a plugin route; the plugin wrote no auth code.
    assert (await archnest_client.get("/api/hooktest/items")).status == 401
    resp = await archnest_client.get("/api/hooktest/items", headers=viewer_headers)
    assert resp.status == 200 and await resp.json() == {"read": True}
    assert (await archnest_client.post("/api/hooktest/items")).status == 401
    assert (await archnest_client.post("/api/hooktest/items", headers=viewer_headers)).status == 403
    resp = await archnest_client.post("/api/hooktest/items", headers=admin_headers)
    assert resp.status == 200 and await resp.json() == {"written": True}


async def test_archnest_cleanup_ctx(archnest_client: TestClient, hook_plugin: HookPlugin) -> None:
    # Plugin contexts start after the database (so the DB is usable) and stop before it.
    assert hook_plugin.events[:2] == ["ctx-start", "source-start"]
    assert DB_KEY in archnest_client.app
    await archnest_client.close()
    assert hook_plugin.events[-2:] == ["source-close", "ctx-stop"]


async def _tables(client_or_app: web.Application) -> set[str]:
    async with client_or_app[DB_KEY].engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_archnest_migrations(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    archnest_client: TestClient,
    archnest_settings: Settings,
) -> None:
    tables = await _tables(archnest_client.app)
    assert {"hooktest_items", "alembic_version_hooktest", "users"} <= tables
    async with archnest_client.app[DB_KEY].engine.connect() as conn:
        rev = await conn.scalar(sa.text("SELECT version_num FROM alembic_version_hooktest"))
    assert rev == "hooktest_0001"
    await archnest_client.close()

    # The plugin removed: the same database still migrates and the app starts.
    app = create_app(archnest_settings)
    client = await aiohttp_client(app)
    assert (await client.get("/healthz")).status == 200
    assert "hooktest" not in {lin.name for lin in _lineages(app)}
    assert "hooktest_items" in await _tables(app)  # left alone, never dropped


def _lineages(app: web.Application) -> list:
    return [lin for lin in app[PM_KEY].hook.archnest_migrations() if lin is not None]


async def test_archnest_assets(archnest_client: TestClient, viewer_headers: dict[str, str]) -> None:
    resp = await archnest_client.get("/hooktest/page", headers=viewer_headers)
    assert resp.status == 200
    html = await resp.text()
    assert '<p id="hooktest-page">a namespaced plugin template</p>' in html
    assert "/static/core/app.css" in html  # it extended the core's base layout
    # Static files are public (the login page needs CSS before anyone signs in).
    resp = await archnest_client.get("/static/hooktest/hello.txt")
    assert resp.status == 200
    assert await resp.text() == "static file of the hooktest plugin\n"


async def test_archnest_nav_items(
    archnest_client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    viewer_page = await (await archnest_client.get("/hooktest/page", headers=viewer_headers)).text()
    assert '<a href="/hooktest/page" aria-current="page">Hook test</a>' in viewer_page
    assert "/containers" in viewer_page  # the core's own item, from the same hook
    assert "Hook admin" not in viewer_page  # admin_only items are filtered per user
    admin_page = await (await archnest_client.get("/hooktest/page", headers=admin_headers)).text()
    assert '<a href="/hooktest/admin">Hook admin</a>' in admin_page


async def test_archnest_settings_nav(
    archnest_client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    resp = await archnest_client.get("/settings/hooktest", headers=admin_headers)
    assert resp.status == 200
    html = await resp.text()
    assert '<p id="hooktest-settings">settings of the hooktest plugin</p>' in html
    # The side navigation holds the plugin's section (current) beside the core's.
    assert '<a href="/settings/hooktest" aria-current="page">Hook settings</a>' in html
    assert 'href="/settings/users"' in html
    # The page is @admin_only: a viewer is refused, and sees no Settings link anywhere.
    resp = await archnest_client.get("/settings/hooktest", headers=viewer_headers)
    assert resp.status == 403
    viewer_page = await (await archnest_client.get("/hooktest/page", headers=viewer_headers)).text()
    assert "/settings" not in viewer_page


async def test_archnest_container_panels(
    archnest_client: TestClient, hook_plugin: HookPlugin, viewer_headers: dict[str, str]
) -> None:
    # The container detail partial of the Containers page, for a container of the real
    # (test) source: the plugin's tab and its namespaced template are rendered.
    resp = await archnest_client.get(
        "/ui/hosts/hooktest:one/containers/web", headers=viewer_headers
    )
    assert resp.status == 200
    html = await resp.text()
    assert 'class="tab tab-plugin"' in html and ">Hook tab</button>" in html
    assert 'data-panel-id="hooktest-panel"' in html
    assert '<div id="hooktest-panel-body">panel for web</div>' in html
    assert "panels:hooktest:one:web" in hook_plugin.events


async def test_archnest_plugin_info(
    archnest_client: TestClient, viewer_headers: dict[str, str]
) -> None:
    plugins = await (await archnest_client.get("/api/plugins", headers=viewer_headers)).json()
    mine = [p for p in plugins if p["name"] == "hookplugin"]
    assert len(mine) == 1
    assert mine[0]["info"] == {"purpose": "hook tests", "tables": ["hooktest_items"]}
    assert mine[0]["sources"] == ["hooktest"]
    assert mine[0]["core"] is False


async def test_archnest_plugin_settings(
    archnest_client: TestClient,
    archnest_settings: Settings,
    hook_plugin: HookPlugin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing given: every field at its default, in the started app.
    assert plugin_settings(archnest_client.app, HookSettings) == HookSettings()
    assert HookSettings.variables()["limit"] == "ARCHNEST_HOOKTEST_LIMIT"

    def build(**env: str) -> web.Application:
        settings = replace(archnest_settings, plugin_env={**archnest_settings.plugin_env, **env})
        return create_app(settings, extra_plugins=[hook_plugin])

    # Given without the process environment, parsed to the declared types; the process
    # environment itself is not what an app built from Settings reads.
    monkeypatch.setenv("ARCHNEST_HOOKTEST_LIMIT", "99")
    app = build(
        ARCHNEST_HOOKTEST_GREETING="hi",
        ARCHNEST_HOOKTEST_NOTE="s3cret-note",
        ARCHNEST_HOOKTEST_LIMIT="7",
        ARCHNEST_HOOKTEST_RATIO="0.25",
        ARCHNEST_HOOKTEST_ENABLED="yes",
    )
    got = plugin_settings(app, HookSettings)
    assert got == HookSettings("hi", "s3cret-note", 7, 0.25, True)
    assert "s3cret-note" not in repr(got)  # secret=True
    with pytest.raises(Exception, match="cannot assign"):
        got.limit = 8  # type: ignore[misc]
    # Empty means unset; booleans in their usual spellings.
    assert plugin_settings(build(ARCHNEST_HOOKTEST_LIMIT=""), HookSettings).limit == 3
    for raw, value in [("1", True), ("TRUE", True), ("on", True), ("0", False), ("off", False)]:
        app = build(ARCHNEST_HOOKTEST_ENABLED=raw)
        assert plugin_settings(app, HookSettings).enabled is value, raw

    # A bad value stops the app from being built, with the variable's name.
    for name, raw, message in [
        (
            "ARCHNEST_HOOKTEST_LIMIT",
            "many",
            "ARCHNEST_HOOKTEST_LIMIT must be an integer, got 'many'",
        ),
        ("ARCHNEST_HOOKTEST_LIMIT", "0", "ARCHNEST_HOOKTEST_LIMIT must be at least 1, got 0"),
        ("ARCHNEST_HOOKTEST_RATIO", "half", "ARCHNEST_HOOKTEST_RATIO must be a number, got 'half'"),
        ("ARCHNEST_HOOKTEST_ENABLED", "maybe", "ARCHNEST_HOOKTEST_ENABLED must be one of"),
    ]:
        with pytest.raises(SystemExit) as exc:
            build(**{name: raw})
        assert str(exc.value).startswith(message), exc.value

    # Only declared classes are read; names are ArchNest's; every field names a variable.
    @dataclass(frozen=True)
    class Undeclared(PluginSettings):
        x: int = env_setting("ARCHNEST_HOOKTEST_X", 1)

    with pytest.raises(LookupError, match="archnest_plugin_settings"):
        plugin_settings(archnest_client.app, Undeclared)
    with pytest.raises(ValueError, match="start with ARCHNEST_"):
        env_setting("HOOKTEST_LIMIT", 1)

    @dataclass(frozen=True)
    class Unnamed(PluginSettings):
        y: int = 2

    with pytest.raises(TypeError, match="names no variable"):
        Unnamed.from_env({})
