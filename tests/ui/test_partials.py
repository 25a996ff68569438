"""The server-rendered pieces of the Containers page, over HTTP against the real sources:
plugin panels and nav items, agent staleness, per-host errors, escaping, formatting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient
from archnest import Assets, NavItem, Panel, Port, Settings, create_app, hookimpl
from archnest.testing import make_user_headers
from archnest.ui_format import human_bytes, port_text, reltime
from markupsafe import Markup

from .conftest import AGENT_SCRIPT, AGENT_TOKEN


def _panel_plugin(templates: Path) -> SimpleNamespace:
    """A third-party plugin contributing two working panels, one broken one and a nav item."""

    @hookimpl
    def archnest_assets() -> Assets:
        return Assets("uitest", templates=templates)

    @hookimpl
    def archnest_nav_items() -> list[NavItem]:
        return [NavItem("Backups", "/backups", order=50)]

    @hookimpl
    def archnest_container_panels(host, container) -> list[Panel]:  # type: ignore[no-untyped-def]
        return [
            Panel("tpl", "Backups", template="uitest/panel.html", context={"name": container.name}),
            Panel("raw", "Raw", html=Markup("<p class='raw-panel'>raw for {}</p>").format(host.id)),
            Panel("broken", "Broken", template="uitest/missing.html"),
        ]

    return SimpleNamespace(
        __name__="ui_panel_plugin",
        archnest_assets=archnest_assets,
        archnest_nav_items=archnest_nav_items,
        archnest_container_panels=archnest_container_panels,
    )


async def _client(aiohttp_client, settings: Settings, extra=None) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(settings, extra_plugins=extra))


async def _docker_host(
    client: TestClient, headers: dict[str, str], url: str, name: str = "e1"
) -> str:
    r = await client.post("/api/docker/hosts", json={"name": name, "url": url}, headers=headers)
    assert r.status == 201, await r.text()
    return f"docker:{(await r.json())['id']}"


async def test_plugin_panels_and_nav_are_rendered(
    aiohttp_client, archnest_settings, testenv_docker, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    (tmp_path / "panel.html").write_text("<p class='tpl-panel'>backups of {{ name }}</p>")
    client = await _client(aiohttp_client, archnest_settings, [_panel_plugin(tmp_path)])
    admin = await make_user_headers(client, "alice", "admin")
    host_id = await _docker_host(client, admin, te.docker_unix_url)
    te.run_container("ui-panel", ["sleep", "3600"], env={"DB_PASSWORD": "hunter2-secret"})

    r = await client.get(f"/ui/hosts/{host_id}/containers/ui-panel", headers=admin)
    html = await r.text()
    assert r.status == 200
    assert "backups of ui-panel" in html and "raw for docker:1" in html
    # Plugin panels become extra tabs after the built-in ones.
    assert html.index(">Terminal</button>") < html.index(">Backups</button>")
    # One broken panel shows its error; the others still render.
    assert "This panel failed" in html and "missing.html" in html
    # Masked on the server: the secret never reaches the page.
    assert "hunter2-secret" not in html and "****" in html

    page = await client.get("/containers", headers=admin)
    assert 'href="/backups"' in await page.text()


async def test_host_failure_is_an_inline_error_not_a_blank(
    aiohttp_client, archnest_settings, testenv_docker
) -> None:  # type: ignore[no-untyped-def]
    client = await _client(aiohttp_client, archnest_settings)
    admin = await make_user_headers(client, "alice", "admin")
    dead = await _docker_host(client, admin, "tcp://127.0.0.1:9", name="dead")
    good = await _docker_host(client, admin, testenv_docker.docker_unix_url)

    hosts = await (await client.get("/ui/hosts", headers=admin)).text()
    assert f'data-host="{dead}"' in hosts and "badge-error" in hosts
    assert f'data-host="{good}"' in hosts and "badge-ok" in hosts
    for path in (
        f"/ui/hosts/{dead}/containers",
        "/ui/hosts/docker:999/containers",
        "/ui/hosts/nosuch:1/containers",
        f"/ui/hosts/{good}/containers/no-such-container",
        f"/ui/hosts/{good}/containers/bad%20ref",
    ):
        r = await client.get(path, headers=admin)
        text = await r.text()
        assert r.status == 200, path  # htmx swaps it in
        assert 'role="alert"' in text and "Could not load" in text, (path, text)
    # The partials are viewer pages: no credentials, no data.
    r = await client.get(f"/ui/hosts/{good}/containers")
    assert r.status == 401


async def test_names_are_escaped(aiohttp_client, archnest_settings, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    client = await _client(aiohttp_client, archnest_settings)
    admin = await make_user_headers(client, "alice", "admin")
    host_id = await _docker_host(client, admin, te.docker_unix_url)
    te.run_container("ui-escape", ["sleep", "3600"], labels={"x": "<img src=x onerror=alert(1)>"})
    html = await (
        await client.get(f"/ui/hosts/{host_id}/containers/ui-escape", headers=admin)
    ).text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


async def test_all_hosts_partial(aiohttp_client, archnest_settings, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    te.run_container("ui-all", ["sleep", "3600"], extra_args=["--stop-timeout", "1"])
    te.run_container("ui-all-done", ["true"])
    client = await _client(aiohttp_client, archnest_settings)
    admin = await make_user_headers(client, "alice", "admin")
    viewer = await make_user_headers(client, "victor", "viewer")
    good = await _docker_host(client, admin, te.docker_unix_url, name="<b>vm&1</b>")
    dead = await _docker_host(client, admin, "tcp://127.0.0.1:1", name="dead-engine")

    r = await client.get("/ui/containers", headers=admin)
    html = await r.text()
    assert r.status == 200
    # Names are escaped everywhere: the host column, the titles, the selector.
    assert "<b>vm&1</b>" not in html and "&lt;b&gt;vm&amp;1&lt;/b&gt;" in html
    assert f'<tr data-host="{good}" data-ref="ui-all"' in html
    assert 'aria-label="Stop ui-all"' in html and 'aria-label="Restart ui-all"' in html
    assert "ui-all-done" not in html  # running only without ?all=1
    # The dead engine is a warning above the table, with its error; the rest still lists.
    warning = html.split('class="host-warnings"')[1].split("</ul>")[0]
    assert f'data-host="{dead}"' in warning and "dead-engine" in warning
    assert "could not be listed" in warning and "error-message" in warning
    assert html.index("host-warnings") < html.index("<table")

    stopped = await (await client.get("/ui/containers?all=1", headers=admin)).text()
    assert 'aria-label="Start ui-all-done"' in stopped

    as_viewer = await (await client.get("/ui/containers", headers=viewer)).text()
    assert "ui-all" in as_viewer and "row-action" not in as_viewer
    selector = await (await client.get("/ui/hosts?host=all", headers=viewer)).text()
    assert 'data-host="all"' in selector and 'aria-current="true"' in selector
    assert "<b>vm&1</b>" not in selector
    assert (await client.get("/ui/containers")).status == 401


@pytest.fixture
def stale_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = AGENT_TOKEN
    archnest_settings.plugin_env["ARCHNEST_AGENT_STALE_SECONDS"] = "1"
    return archnest_settings


async def test_agent_host_is_read_only_and_warns_when_stale(
    aiohttp_client, stale_settings, testenv_docker
) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    te.run_container("ui-agent", ["sleep", "3600"])
    client = await _client(aiohttp_client, stale_settings)
    viewer = await make_user_headers(client, "victor", "viewer")
    env = {k: v for k, v in te.docker_cli_env().items() if not k.startswith("ARCHNEST_")}
    env.update(
        ARCHNEST_URL=str(client.make_url("")).rstrip("/"),
        ARCHNEST_AGENT_TOKEN=AGENT_TOKEN,
        ARCHNEST_AGENT_HOSTNAME="edge-1",
    )
    proc = await asyncio.create_subprocess_exec(
        "bash", str(AGENT_SCRIPT), "--once", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err
    await asyncio.sleep(1.5)  # older than ARCHNEST_AGENT_STALE_SECONDS

    hosts = await (await client.get("/ui/hosts", headers=viewer)).text()
    assert 'data-host="agent:edge-1"' in hosts and "badge-stale" in hosts
    assert "reported" in hosts
    listing = await (await client.get("/ui/hosts/agent:edge-1/containers", headers=viewer)).text()
    assert "ui-agent" in listing and "Read-only host" in listing and "Last report" in listing
    assert "stale-warning" in listing
    detail = await (
        await client.get("/ui/hosts/agent:edge-1/containers/ui-agent", headers=viewer)
    ).text()
    assert "btn-action" not in detail
    assert "Logs are not available from this source" in detail
    assert "A terminal is not available from this source" in detail


def test_formatting_helpers() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert reltime((now - timedelta(seconds=20)).isoformat(), now) == "just now"
    assert reltime((now - timedelta(minutes=1)).isoformat(), now) == "1 minute ago"
    assert reltime((now - timedelta(hours=5)).isoformat().replace("+00:00", "Z"), now) == (
        "5 hours ago"
    )
    assert reltime((now + timedelta(days=2)).isoformat(), now) == "in 2 days"
    assert reltime(None) == "" and reltime("not a date") == "not a date"
    assert human_bytes(None) == "\u2013" and human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(3 * 1024**3) == "3.0 GiB"
    assert port_text(Port(private=80)) == "80/tcp"
    assert port_text({"private": 53, "public": 5353, "type": "udp", "ip": "0.0.0.0"}) == (
        "0.0.0.0:5353\u219253/udp"
    )
