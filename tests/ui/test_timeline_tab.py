"""The Timeline tab in a real browser: a container on a docker host (the test dockerd)
that exits 3 and is started again shows its start, its exit with the code (marked as a
failure) and its new start, newest first; Refresh picks up a later change."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from tests.testenv import TestEnv

from .conftest import LiveApp, add_docker_host, login, new_page, screenshot


@pytest.fixture
def testenv_docker(testenv: TestEnv) -> Iterator[TestEnv]:
    """The dockerd is shared with other tests: this module removes its own containers."""
    yield testenv


async def _wait_entries(live: LiveApp, host_id: str, ref: str, want: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        status, body = await live.api("GET", f"/api/hosts/{host_id}/containers/{ref}/timeline")
        if status == 200 and len(body) >= want:
            return
        assert time.monotonic() < deadline, (status, body)
        await asyncio.sleep(0.3)


async def test_timeline_tab_shows_exits_with_their_code(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    name = f"tl-{secrets.token_hex(3)}"
    host_id = await add_docker_host(live_app, te.docker_unix_url, name=f"{name}-engine")
    status, _ = await live_app.api("GET", f"/api/containers?host={host_id}")
    assert status == 200  # the host's watcher is up before the container starts
    await asyncio.sleep(1)
    te.run_container(name, ["sh", "-c", "sleep 2; exit 3"])
    try:
        te.docker("wait", name)
        te.docker("start", name)
        await _wait_entries(live_app, host_id, name, 3)  # start, die (3), start

        context, page, watch = await new_page(browser, live_app)
        await login(page, "alice", "alice-password-1")
        await page.goto(live_app.base_url + f"/containers?host={host_id}&all=1")
        await page.locator(f'#container-list .open-container[data-name="{name}"]').click()
        panel = page.locator(f'.detail[data-name="{name}"][data-host="{host_id}"]')
        await expect(panel).to_be_visible()
        await panel.get_by_role("tab", name="Timeline").click()
        table = panel.locator(".timeline-table")
        await expect(table).to_be_visible()
        rows = table.locator("tbody tr")
        died = rows.filter(has_text="Exited")
        await expect(died.first).to_contain_text("exit code 3")
        await expect(died.first.locator(".timeline-bad")).to_have_count(1)
        await expect(rows.filter(has_text="Started")).to_have_count(2)
        # Newest first: the oldest three at the bottom, the second start above the exit
        # (a second exit may already be on top).
        events = await rows.evaluate_all("rs => rs.map(r => r.dataset.event)")
        assert events[-3:] == ["start", "die", "start"], events
        await screenshot(page, "container-timeline")

        # It exits again (2 s after the start); Refresh shows the second exit.
        te.docker("wait", name)
        await _wait_entries(live_app, host_id, name, 4)
        await panel.get_by_role("button", name="Refresh").last.click()
        await expect(rows.filter(has_text="Exited")).to_have_count(2)
        assert watch.errors == []  # no console errors, no CSP violations
        await context.close()
    finally:
        te.docker("rm", "-f", name, check=False)
