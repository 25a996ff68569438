"""A container's detail shows its tabs without waiting for the stats sample, which
arrives on its own request (GET .../stats) and fills the Stats tab; "Refresh" takes
another. In Chromium, against the real dockerd through the docker and ssh sources.

To show the order for certain, the browser holds the stats request (Playwright's
request routing) until the rest of the detail has been checked, then lets the very same
request through to the app: the answer is the real one.
"""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from .conftest import add_docker_host, add_ssh_host, login, new_page, screenshot

CPU = re.compile(r"\d+\.\d\d %")


def _row_opener(page, host_id: str, name: str):  # type: ignore[no-untyped-def]
    return page.locator(
        f'#container-list .open-container[data-name="{name}"][data-host="{host_id}"]'
    )


async def _open(page, host_id: str, name: str):  # type: ignore[no-untyped-def]
    await page.locator(f'.host-link[data-host="{host_id}"]').click()
    await _row_opener(page, host_id, name).click()
    return page.locator(f'.detail[data-name="{name}"][data-host="{host_id}"]')


async def _until_held(held: list, timeout: float = 20) -> None:
    """Wait until the page has sent a stats request (held by the route)."""
    for _ in range(int(timeout / 0.05)):
        if held:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the page sent no stats request")


async def test_tabs_render_before_stats_then_stats_fill(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    te.run_container(
        "ui-spin",
        ["sh", "-c", "while :; do :; done"],
        extra_args=["--memory", "64m", "--stop-timeout", "1"],
    )
    te.run_container("ui-ended", ["true"])
    te.docker("wait", "ui-ended")
    docker_id = await add_docker_host(live_app, te.docker_unix_url)
    ssh_id = await add_ssh_host(live_app, te)

    context, page, watch = await new_page(browser, live_app)
    await login(page, "victor", "viewer-password-1")

    held: list = []
    stats_requests: list[str] = []

    async def hold(route) -> None:  # type: ignore[no-untyped-def]
        stats_requests.append(route.request.url)
        held.append(route)

    await page.route(re.compile(r"/api/hosts/[^/]+/containers/[^/]+/stats$"), hold)

    for host_id in (docker_id, ssh_id):
        await page.get_by_role("tab", name="Containers", exact=True).click()
        detail = await _open(page, host_id, "ui-spin")
        # The detail is in while its sample is still on its way.
        await expect(detail).to_be_visible()
        await expect(detail.get_by_role("tab", name="Overview")).to_have_attribute(
            "aria-selected", "true"
        )
        await expect(detail.locator(".subpanel").first).to_contain_text("archnest-test/busybox:1")
        await _until_held(held)
        await detail.get_by_role("tab", name="State").click()
        await expect(detail).to_contain_text("Started")
        await detail.get_by_role("tab", name="Stats").click()
        stats_box = detail.locator(".stats-box")
        await expect(stats_box.locator(".stats-status")).to_have_text("Taking a sample\u2026")
        await expect(stats_box.locator("dl.stats")).to_be_hidden()
        if host_id == docker_id:
            await screenshot(page, "container-stats-pending")

        # Let the real request through: the numbers of a spinning shell arrive.
        route = held.pop()
        assert route.request.url.endswith("/containers/ui-spin/stats")
        await route.continue_()
        facts = stats_box.locator("dl.stats")
        await expect(facts).to_be_visible()
        await expect(facts.locator('[data-stat="cpu"]')).to_have_text(CPU)
        await expect(facts.locator('[data-stat="mem"]')).to_contain_text("/ 64.0 MiB")
        await expect(facts.locator('[data-stat="mem"] meter')).to_have_attribute(
            "max", str(64 * 1024 * 1024)
        )
        await expect(facts.locator('[data-stat="pids"]')).to_have_text("1")
        await expect(stats_box.locator(".stats-status")).to_contain_text("One sample, taken at")
        cpu = float((await facts.locator('[data-stat="cpu"]').inner_text()).split()[0])
        assert cpu > 2, cpu  # a spinning shell (idle is 0.00), measured by the real engine
        if host_id == docker_id:
            await screenshot(page, "container-stats-sample")

        # Refresh takes another sample (a new request, answered by the app).
        before = len(stats_requests)
        await stats_box.get_by_role("button", name="Refresh").click()
        await _until_held(held)
        assert len(stats_requests) == before + 1
        await expect(stats_box).to_have_attribute("aria-busy", "true")
        await held.pop().continue_()
        await expect(stats_box).not_to_have_attribute("aria-busy", "true")
        await expect(facts.locator('[data-stat="cpu"]')).to_have_text(CPU)

    # A container that is not running: the Stats tab says so.
    await page.unroute(re.compile(r"/api/hosts/[^/]+/containers/[^/]+/stats$"))
    await page.get_by_role("tab", name="Containers", exact=True).click()
    await page.get_by_label("Show stopped").check()
    ended = await _open(page, docker_id, "ui-ended")
    await ended.get_by_role("tab", name="Stats").click()
    await expect(ended.locator(".stats-status")).to_contain_text(
        "No stats: the container is not running"
    )
    await expect(ended.locator("dl.stats")).to_be_hidden()

    assert watch.errors == []
    await context.close()
