"""The Stats tab's history charts in a real browser: a container on a docker host (the
test dockerd) sampled every second (ARCHNEST_STATS_INTERVAL=1); opening the Stats tab
draws CPU, memory, network and block I/O with uPlot, the range buttons switch, and a
container with no samples yet says so."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import pytest
from archnest import SOURCES_KEY, Settings
from playwright.async_api import expect

from tests.testenv import TestEnv

from .conftest import LiveApp, add_docker_host, login, new_page, screenshot


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.stats_interval = 1.0
    return archnest_settings


@pytest.fixture
def testenv_docker(testenv: TestEnv) -> Iterator[TestEnv]:
    """The dockerd is shared with other tests: this module removes its own containers."""
    yield testenv


async def _points(live: LiveApp, host_id: str, name: str, want: int) -> int:
    deadline = time.monotonic() + 60
    url = f"/api/hosts/{host_id}/containers/{name}/stats/history?range=1h"
    while True:
        status, body = await live.api("GET", url)
        # 404 until the host's first listing is in the live state.
        assert status in (200, 404), body
        count = len(body["points"]) if status == 200 else 0
        if count >= want or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.5)


async def test_stats_tab_draws_the_history_and_switches_ranges(
    browser, live_app, testenv_docker
) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    name = f"hist-{secrets.token_hex(3)}"
    te.run_container(name, ["sh", "-c", "while :; do :; done"], extra_args=["--memory", "64m"])
    try:
        # Other tests' containers on the shared dockerd would be sampled too, one after
        # another (a round of many seconds): the source answers None for them at once.
        ours = te.docker("inspect", "-f", "{{.Id}}", name).strip()
        source = live_app.server.app[SOURCES_KEY]["docker"]
        real = source.stats

        async def only_ours(key: str, ref: str):  # type: ignore[no-untyped-def]
            return await real(key, ref) if ref in (ours, name) else None

        source.stats = only_ours  # type: ignore[method-assign]
        host_id = await add_docker_host(live_app, te.docker_unix_url, name=f"{name}-engine")
        assert await _points(live_app, host_id, name, 4) >= 4

        context, page, watch = await new_page(browser, live_app)
        await login(page, "alice", "alice-password-1")
        await page.goto(live_app.base_url + f"/containers?host={host_id}")
        opener = page.locator(f'#container-list .open-container[data-name="{name}"]')
        await opener.click()
        panel = page.locator(f'.detail[data-name="{name}"][data-host="{host_id}"]')
        await expect(panel).to_be_visible()
        await panel.get_by_role("tab", name="Stats").click()
        history = panel.locator(".stats-history")
        await expect(history.locator("canvas")).to_have_count(4)
        await expect(history.locator(".stats-history-status")).to_contain_text("points")
        for title in ("CPU %", "Memory", "Network in / out", "Block read / write"):
            await expect(history.locator("figcaption", has_text=title)).to_be_visible()
        await expect(history.locator('[data-range="1h"]')).to_have_attribute("aria-pressed", "true")
        await screenshot(page, "stats-history")

        # 7 d reads the 5-minute tier, empty until the first downsampling: the empty state.
        await history.locator('[data-range="7d"]').click()
        await expect(history.locator('[data-range="7d"]')).to_have_attribute("aria-pressed", "true")
        await expect(history.locator(".stats-history-status")).to_contain_text("No history yet")
        await expect(history.locator("canvas")).to_have_count(0)
        await history.locator('[data-range="24h"]').click()
        await expect(history.locator("canvas")).to_have_count(4)
        assert watch.errors == []  # no console errors, no CSP violations
        await context.close()
    finally:
        te.docker("rm", "-f", name, check=False)
