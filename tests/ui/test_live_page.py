"""An open Containers page follows the real dockerd without a reload: state changes made
outside the app (docker pause / stop / start) show in the row within 2 s, a new
container appears and a removed one goes."""

from __future__ import annotations

import asyncio
import secrets

from playwright.async_api import expect

from .conftest import add_docker_host, login, new_page

LATENCY_MS = 2000  # api.md: a change reaches subscribers within 2 s (the page: + render)


def _row(page, cid: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#container-list tbody tr[data-id="{cid}"]')


async def test_page_follows_the_engine_without_reload(live_app, browser, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    first = te.run_container(f"lp-{secrets.token_hex(3)}", extra_args=["--stop-timeout", "1"])
    host = await add_docker_host(live_app, te.docker_unix_url, name="live-engine")
    context, page, watch = await new_page(browser, live_app)
    try:
        await login(page, "alice", "alice-password-1")
        await page.goto(f"/containers?host={host}&all=1")
        await expect(_row(page, first)).to_be_visible()
        await expect(page.locator("body[data-live=on]")).to_be_attached()
        # A mark on this very document: a reload would lose it.
        await page.evaluate("window.__sameDocument = true")
        badge = _row(page, first).locator(".state-badge")

        await asyncio.to_thread(te.docker, "pause", first)
        await expect(badge).to_have_text("paused", timeout=LATENCY_MS)
        await asyncio.to_thread(te.docker, "unpause", first)
        await expect(badge).to_have_text("running", timeout=LATENCY_MS)
        await asyncio.to_thread(te.docker, "stop", "-t", "1", first)
        await expect(badge).to_have_text("exited", timeout=LATENCY_MS)
        await asyncio.to_thread(te.docker, "start", first)
        await expect(badge).to_have_text("running", timeout=LATENCY_MS)

        second = await asyncio.to_thread(te.run_container, f"lp-new-{secrets.token_hex(3)}")
        await expect(_row(page, second)).to_be_visible(timeout=LATENCY_MS + 1000)
        await asyncio.to_thread(te.docker, "rm", "-f", second)
        await expect(_row(page, second)).to_have_count(0, timeout=LATENCY_MS + 1000)

        assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        assert watch.errors == []
    finally:
        await context.close()
