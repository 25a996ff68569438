"""Browser tests of the Containers page: the real app on a loopback port, fed by the real
test dockerd (docker source), sshd (ssh source) and the real agent script (agent
source), driven by Debian's chromium through Playwright."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from archnest import Settings, create_app
from archnest.keys import DB_KEY
from archnest.testing import ADMIN_PASSWORD
from archnest.users import create_token, create_user

REPO = Path(__file__).resolve().parents[2]
AGENT_SCRIPT = REPO / "plugins" / "docker_agent" / "files" / "archnest-docker-agent.sh"
SCREENSHOTS = REPO / "docs" / "images"
CHROMIUM = os.environ.get("ARCHNEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
AGENT_TOKEN = "ui-test-agent-token-0123456789"
VIEWER_PASSWORD = "viewer-password-1"


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = AGENT_TOKEN
    archnest_settings.host_timeout = 15.0
    return archnest_settings


@dataclass
class LiveApp:
    """The started app on 127.0.0.1 plus an admin API client (bearer token)."""

    server: TestServer
    http: aiohttp.ClientSession
    admin_token: str
    hosts: dict[str, str] = field(default_factory=dict)  # source -> host id

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.admin_token}", **kwargs.pop("headers", {})}
        async with self.http.request(
            method, self.base_url + path, headers=headers, **kwargs
        ) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body


@pytest.fixture
async def live_app(archnest_settings: Settings, testenv_docker) -> AsyncIterator[LiveApp]:  # type: ignore[no-untyped-def]
    app = create_app(archnest_settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    db = app[DB_KEY]
    await create_user(db, "alice", "alice-password-1", "admin")
    await create_user(db, "victor", VIEWER_PASSWORD, "viewer")
    token = await create_token(db, "alice", "ui-tests")
    async with aiohttp.ClientSession() as http:
        live = LiveApp(server, http, token)
        try:
            yield live
        finally:
            await server.close()


async def add_docker_host(live: LiveApp, url: str, name: str = "engine-local") -> str:
    status, body = await live.api("POST", "/api/docker/hosts", json={"name": name, "url": url})
    assert status == 201, body
    return f"docker:{body['id']}"


async def add_ssh_host(live: LiveApp, testenv, name: str = "ssh-target") -> str:  # type: ignore[no-untyped-def]
    """An SSH target with the pinned host key from the testenv, key authentication."""
    target = testenv.ssh_target
    material = testenv.ssh
    status, body = await live.api(
        "POST",
        "/api/ssh/targets",
        json={
            "name": name,
            "host": target.host,
            "port": target.port,
            "username": material.username,
            "auth": "key",
            "private_key": material.private_key,
            "host_keys": [target.host_key],
            "docker": True,
        },
    )
    assert status == 201, body
    return f"ssh:{body['id']}"


async def report_from_agent(live: LiveApp, testenv, hostname: str = "agent-host") -> str:  # type: ignore[no-untyped-def]
    """Run the real agent script once against the live server; returns the host id."""
    env = {k: v for k, v in testenv.docker_cli_env().items() if not k.startswith("ARCHNEST_")}
    env.update(
        ARCHNEST_URL=live.base_url,
        ARCHNEST_AGENT_TOKEN=AGENT_TOKEN,
        ARCHNEST_AGENT_HOSTNAME=hostname,
    )
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(AGENT_SCRIPT),
        "--once",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, (out, err)
    return f"agent:{hostname}"


VENDOR = REPO / "core" / "static" / "vendor"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    missing = [n for n in ("htmx.min.js", "xterm.js", "addon-fit.js") if not (VENDOR / n).is_file()]
    if missing:
        pytest.fail(f"browser assets missing ({', '.join(missing)}): run scripts/build-static.sh")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        # A failure under CI=true (tests/conftest.py turns every skip into one there).
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.async_api import async_playwright, expect

    # Host calls (docker stop, ssh round trips) can take seconds on a busy CI machine.
    expect.set_options(timeout=20_000)

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@dataclass
class PageWatch:
    """Console errors and uncaught exceptions of a page (the tests assert there are none)."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))


async def new_page(browser: Any, live: LiveApp, width: int = 1280, height: int = 860) -> tuple:
    context = await browser.new_context(
        viewport={"width": width, "height": height}, base_url=live.base_url
    )
    page = await context.new_page()
    page.set_default_timeout(20_000)
    watch = PageWatch()
    watch.attach(page)
    return context, page, watch


async def login(page: Any, username: str, password: str) -> None:
    await page.goto("/containers")
    # Not signed in: the page redirects to the login form and back.
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/containers**")


async def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


__all__ = ["ADMIN_PASSWORD"]
