"""Settings > Audit log in Chromium: real changes appear, filters narrow the table and
the export links carry them, pages go back and forth, a recording has its link, and
viewers are refused."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import archnest
import pytest
from playwright.async_api import expect

from tests.testenv import TestEnv

from .conftest import VIEWER_PASSWORD, login, new_page, screenshot


@pytest.fixture
def testenv_docker(testenv: TestEnv) -> Iterator[TestEnv]:
    """live_app's environment without its "remove every container": the dockerd is
    shared with other tests, so this module removes its own container only."""
    yield testenv


@pytest.fixture
def container(testenv: TestEnv) -> Iterator[str]:
    name = f"audit-ui-{secrets.token_hex(3)}"
    testenv.run_container(name)
    try:
        yield name
    finally:
        testenv.docker("rm", "-f", name, check=False)


def _rows(page):  # type: ignore[no-untyped-def]
    return page.locator("#audit-table tbody tr[data-id]")


async def test_audit_page_filters_pages_and_exports(browser, live_app, testenv, container) -> None:  # type: ignore[no-untyped-def]
    live = live_app
    app = live.server.app
    # Older filler rows first (a plugin's own events), so paging has something to page.
    for i in range(55):
        await archnest.audit_event(app, "bulk.tick", detail={"n": i})
    status, engine = await live.api(
        "POST", "/api/docker/hosts", json={"name": "engine-a", "url": testenv.docker_unix_url}
    )
    assert status == 201, engine
    host = f"docker:{engine['id']}"
    for action in ("pause", "unpause"):
        status, body = await live.api("POST", f"/api/hosts/{host}/containers/{container}/{action}")
        assert status == 200, body
    status, body = await live.api(
        "POST", "/api/users", json={"username": "dora", "password": "dora-password-1"}
    )
    assert status == 201, body
    status, body = await live.api("PATCH", "/api/users/dora", json={"role": "admin"})
    assert status == 200, body
    async with live.http.post(
        live.base_url + "/api/auth/login", json={"username": "dora", "password": "nope-nope"}
    ) as resp:
        assert resp.status == 401
    await archnest.audit_event(
        app,
        "terminal.close",
        host_id=host,
        container=container,
        detail={"seconds": 12.5, "bytes_in": 40, "bytes_out": 900},
        recording_id="rec-42",
    )

    _, page, watch = await new_page(browser, live, width=1500, height=1100)
    await login(page, "alice", "alice-password-1")
    await page.goto("/settings/users")
    await (
        page.get_by_role("navigation", name="Settings")
        .get_by_role("link", name="Audit log")
        .click()
    )
    await expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible()
    await expect(_rows(page)).to_have_count(50)
    # Newest first: alice's own sign-in just now, then the terminal session.
    await expect(_rows(page).first).to_contain_text("login")
    terminal = page.locator("#audit-table tbody tr", has_text="terminal.close")
    play = terminal.get_by_role("link", name="Play")
    href = await play.get_attribute("href")
    assert href in ("/recordings/rec-42", "/api/recordings/rec-42")
    failed = page.locator("#audit-table tbody tr", has_text="login.failed")
    await expect(failed).to_contain_text("dora")
    await expect(failed).to_contain_text("bad_credentials")
    await expect(page.locator("#audit-table tbody tr", has_text="container.pause")).to_contain_text(
        container
    )
    await screenshot(page, "settings-audit")

    # Filter by action prefix and user: the table and both export links follow.
    await page.get_by_label("Action").fill("user.")
    await page.get_by_label("User", exact=True).fill("alice")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/settings/audit?*action=user.*")
    await expect(_rows(page)).to_have_count(2)
    for row in await _rows(page).all():
        await expect(row).to_contain_text("user.")
    csv_href = await page.get_by_role("link", name="Export CSV").get_attribute("href")
    json_href = await page.get_by_role("link", name="Export JSON").get_attribute("href")
    for link, fmt in ((csv_href, "csv"), (json_href, "json")):
        query = parse_qs(urlparse(link).query)
        assert (query["action"], query["user"], query["format"]) == (["user."], ["alice"], [fmt])
    # The link works with the page's own session and gives the same rows.
    resp = await page.request.get(csv_href)
    assert resp.status == 200
    assert resp.headers["content-disposition"].startswith("attachment;")
    exported = list(csv.DictReader(io.StringIO(await resp.text(), newline="")))
    assert [r["action"] for r in exported] == ["user.update", "user.create"]
    assert (await (await page.request.get(json_href)).json())[0]["action"] == "user.update"

    # Paging through a filter of its own.
    await page.goto("/settings/audit?action=bulk.")
    await expect(_rows(page)).to_have_count(50)
    await page.get_by_role("link", name="Older →").click()
    await expect(_rows(page)).to_have_count(5)
    await expect(_rows(page).last).to_contain_text('{"n": 0}')
    await page.get_by_role("link", name="← Newer").click()
    await expect(_rows(page)).to_have_count(50)

    # A bad time is said beside the form, not a blank page.
    await page.get_by_label("Since").fill("yesterday")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#audit-error")).to_contain_text("since must be unix seconds")
    assert watch.errors == [] or all("status of 400" in e for e in watch.errors), watch.errors

    # Viewers: no Settings, and the page itself is refused.
    _, viewer, _ = await new_page(browser, live)
    await login(viewer, "victor", VIEWER_PASSWORD)
    resp = await viewer.goto("/settings/audit")
    assert resp is not None and resp.status == 403
