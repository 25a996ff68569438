"""A terminal session over the real exec, replayed in Chromium: the player renders under
the page's policy and, played, shows the typed command's output; Settings > Recordings
links to it; viewers are refused."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.testenv import TestEnv

from .conftest import VIEWER_PASSWORD, LiveApp, login, new_page, screenshot
from .test_csp import _watch_violations


@pytest.fixture
def testenv_docker(testenv: TestEnv) -> Iterator[TestEnv]:
    """live_app's environment without its "remove every container": the dockerd is
    shared with other tests, so this module removes its own container only."""
    yield testenv


@pytest.fixture
def container(testenv: TestEnv) -> Iterator[str]:
    name = f"rec-ui-{secrets.token_hex(3)}"
    testenv.run_container(name)
    try:
        yield name
    finally:
        testenv.docker("rm", "-f", name, check=False)


async def _record_session(live: LiveApp, host: str, container: str) -> tuple[str, str]:
    """Open a terminal, type a command whose output is not its own text, close it;
    (recording id, the output)."""
    n = random.randint(10_000, 99_999)
    marker = f"rec-{n + 1}-marker"
    url = live.base_url + f"/api/exec?host={host}&container={container}&cmd=sh&cols=80&rows=12"
    headers = {"Authorization": f"Bearer {live.admin_token}"}
    async with live.http.ws_connect(url, headers=headers) as ws:
        await ws.send_bytes(b"ls -d /etc /bin\n")
        await ws.send_bytes(f"echo rec-$(({n}+1))-marker\n".encode())
        seen = ""
        async with asyncio.timeout(20):
            while marker not in seen:
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.BINARY, (msg, seen)
                seen += msg.data.decode(errors="replace")
    for _ in range(100):
        status, rows = await live.api("GET", f"/api/recordings?host_id={host}")
        assert status == 200, rows
        if rows and rows[0]["ended_at"]:
            return rows[0]["id"], marker
        await asyncio.sleep(0.1)
    raise AssertionError("the session was not recorded")


async def test_a_recorded_terminal_replays_in_the_browser(  # type: ignore[no-untyped-def]
    browser, live_app, testenv, container
) -> None:
    live = live_app
    status, engine = await live.api(
        "POST", "/api/docker/hosts", json={"name": "engine-rec", "url": testenv.docker_unix_url}
    )
    assert status == 201, engine
    host = f"docker:{engine['id']}"
    rec_id, marker = await _record_session(live, host, container)

    _, page, watch = await new_page(browser, live, width=1100, height=760)
    violations: list[Any] = await _watch_violations(page)
    await login(page, "alice", "alice-password-1")

    # Settings > Recordings lists it and links to the player.
    await page.goto("/settings/recordings")
    row = page.locator(f'#recordings-table tr[data-id="{rec_id}"]')
    await expect(row).to_contain_text(container)
    await expect(row).to_contain_text("alice")
    await screenshot(page, "settings-recordings")
    await row.get_by_role("link", name="Play").click()
    await page.wait_for_url(f"**/recordings/{rec_id}")

    await expect(page.locator("#rec-container")).to_have_text(container)
    await expect(page.locator("#rec-host")).to_have_text(host)
    await expect(page.locator("#rec-user")).to_have_text("alice")
    player = page.locator("#recording-player")
    await expect(player.locator(".ap-player")).to_be_visible()
    await player.click()  # the start overlay: play
    await expect(player).to_contain_text(marker, timeout=20_000)
    await page.wait_for_timeout(800)  # let the last frame paint for the picture
    await screenshot(page, "recording-replay")
    assert violations == [], violations
    assert watch.errors == [], watch.errors

    # Viewers: neither page nor the cast.
    _, viewer, _ = await new_page(browser, live)
    await login(viewer, "victor", VIEWER_PASSWORD)
    for path in (f"/recordings/{rec_id}", "/settings/recordings", f"/api/recordings/{rec_id}"):
        resp = await viewer.goto(path)
        assert resp is not None and resp.status == 403, path
