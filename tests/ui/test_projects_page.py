"""The Projects page in a real browser: a compose project of two services, read through
two hosts (a docker engine and an ssh target on the test dockerd); an admin stops and
starts it from the page, a viewer sees no buttons, an agent-only view is read-only."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import expect

from tests.testenv import TestEnv

from .conftest import (
    VIEWER_PASSWORD,
    LiveApp,
    add_docker_host,
    add_ssh_host,
    login,
    new_page,
    report_from_agent,
    screenshot,
)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# Ends at once on SIGTERM (a plain `sleep` as PID 1 ignores it and waits out the grace).
QUICK_STOP = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


@pytest.fixture
def testenv_docker(testenv: TestEnv) -> Iterator[TestEnv]:
    """live_app's environment without its "remove every container" at the end: the
    dockerd is shared with other tests, so this module removes its own containers only."""
    yield testenv


@pytest.fixture
def project(testenv: TestEnv) -> Iterator[dict[str, str]]:
    name = f"shop-{secrets.token_hex(3)}"
    members = {"web": f"{name}-web-1", "db": f"{name}-db-1"}
    try:
        for service, container in members.items():
            testenv.run_container(
                container, QUICK_STOP, labels={PROJECT_LABEL: name, SERVICE_LABEL: service}
            )
        yield {"name": name, **members}
    finally:
        testenv.docker("rm", "-f", *members.values(), check=False)


async def _listed_on(live: LiveApp, name: str, hosts: list[str], query: str = "") -> dict[str, Any]:
    """Wait until the API lists the project on these hosts: a new host's containers reach
    the live state with its first listing, a moment after it is added."""
    deadline = time.monotonic() + 15
    while True:
        status, body = await live.api("GET", f"/api/projects{query}")
        assert status == 200, body
        found = next((p for p in body if p["name"] == name), None)
        if found and found["hosts"] == sorted(hosts):
            return found
        assert time.monotonic() < deadline, f"{name} not listed on {hosts}: {found}"
        await asyncio.sleep(0.2)


def _section(page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.project[data-project="{name}"]')


async def test_projects_page_admin_stops_and_starts_viewer_reads(
    browser, live_app: LiveApp, testenv: TestEnv, project: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    name, te = project["name"], testenv
    docker_id = await add_docker_host(live_app, te.docker_unix_url, name="engine-a")
    ssh_id = await add_ssh_host(live_app, te, name="vm-b")
    await _listed_on(live_app, name, [docker_id, ssh_id])

    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await page.get_by_role("link", name="Projects").click()
    await page.wait_for_url("**/projects")
    section = _section(page, name)
    await expect(section).to_be_visible()
    await expect(section.locator(".project-state")).to_have_text("running")

    # Two services, each with its container on both hosts, each with a state badge.
    rows = section.locator("tbody tr")
    await expect(rows).to_have_count(4)
    for service in ("web", "db"):
        for host_id in (docker_id, ssh_id):
            row = section.locator(f'tr[data-service="{service}"][data-host="{host_id}"]')
            await expect(row.locator('[data-cell="state"]')).to_have_text("running")
            link = row.locator("a.container-link")
            await expect(link).to_have_text(project[service])
            href = urlsplit(await link.get_attribute("href") or "")
            assert href.path == "/containers"
            key = f"{host_id}/{project[service]}"
            assert parse_qs(href.query) == {"host": [host_id], "open": [key], "tab": [key]}
    await expect(section.get_by_role("link", name="Show in Containers")).to_have_attribute(
        "href", f"/containers?host=all&all=1&project={name}"
    )
    await expect(
        section.get_by_role("button", name=f"Start project {name}", exact=True)
    ).to_be_disabled()
    # The filter: other tests' projects on the shared dockerd are hidden (and the
    # screenshot shows this one alone).
    filter_box = page.get_by_label("Filter projects")
    await filter_box.fill(f"nothing-{name}")
    await expect(page.locator("#project-list .no-match")).to_be_visible()
    await filter_box.fill(f"{name} vm-b")
    await expect(page.locator("#project-list .project:visible")).to_have_count(1)
    await expect(section).to_be_visible()
    await filter_box.fill(name)
    await screenshot(page, "projects")

    # Stop, dismissed: nothing happens.
    stop = section.get_by_role("button", name=f"Stop project {name}", exact=True)
    await stop.click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text(f"“{name}” (4 on 2 hosts)")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    assert te.docker("inspect", "-f", "{{.State.Status}}", project["web"]) == "running"

    # Stop, confirmed: the real containers stop and the page shows it without a reload.
    await stop.click()
    await page.get_by_role("dialog").get_by_role("button", name="Stop", exact=True).click()
    await expect(section.locator(".project-result")).to_contain_text("stop: 4 done")
    await expect(section.locator(".project-state")).to_have_text("stopped")
    await expect(section.locator('[data-cell="state"]', has_text="exited")).to_have_count(4)
    for service in ("web", "db"):
        assert te.docker("inspect", "-f", "{{.State.Status}}", project[service]) == "exited"

    # Start needs no confirmation.
    await section.get_by_role("button", name=f"Start project {name}", exact=True).click()
    await expect(section.locator(".project-state")).to_have_text("running")
    for service in ("web", "db"):
        assert te.docker("inspect", "-f", "{{.State.Status}}", project[service]) == "running"

    # A change made elsewhere (the docker CLI) shows without a reload (GET /api/events).
    marker = await page.evaluate("() => (window.__notReloaded = true)")
    te.docker("stop", project["db"])
    await expect(section.locator(".project-state")).to_have_text("partial")
    db_states = section.locator('tr[data-service="db"] [data-cell="state"]')
    await expect(db_states.filter(has_text="exited")).to_have_count(2)
    te.docker("start", project["db"])
    await expect(section.locator(".project-state")).to_have_text("running")
    assert await page.evaluate("() => window.__notReloaded") is marker

    # "Show in Containers": the all-hosts list filtered to the project, stopped ones too.
    await section.get_by_role("link", name="Show in Containers").click()
    await page.wait_for_url("**/containers?**")
    listed = page.locator("#container-list tbody tr")
    await expect(listed).to_have_count(4)
    openers = page.locator("#container-list tbody tr .open-container")
    shown = await openers.evaluate_all("els => els.map(e => [e.dataset.host, e.dataset.name])")
    assert sorted(map(tuple, shown)) == sorted(
        (h, project[s]) for h in (docker_id, ssh_id) for s in ("web", "db")
    )
    await expect(page.locator("#show-stopped")).to_be_checked()
    await page.go_back()
    await page.wait_for_url("**/projects")

    # A container's link opens its detail on the Containers page.
    await section.locator(f'tr[data-service="db"][data-host="{docker_id}"] a').click()
    await page.wait_for_url("**/containers?**")
    await expect(
        page.locator(f'.detail[data-name="{project["db"]}"][data-host="{docker_id}"]')
    ).to_be_visible()
    assert watch.errors == []
    await context.close()

    # A viewer sees the project and no buttons.
    context, page, watch = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    await page.goto("/projects")
    section = _section(page, name)
    await expect(section.locator("tbody tr")).to_have_count(4)
    await expect(section.locator(".project-action")).to_have_count(0)
    assert watch.errors == []
    await context.close()

    # Only the agent's view of it: read-only, no buttons even for an admin.
    agent_id = await report_from_agent(live_app, te, hostname=f"agent-{secrets.token_hex(3)}")
    await _listed_on(live_app, name, [agent_id], query=f"?host={agent_id}")
    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await page.goto(f"/projects?host={agent_id}")
    section = _section(page, name)
    await expect(section.locator("tbody tr")).to_have_count(2)
    await expect(section.locator(".project-head .badge", has_text="read-only")).to_be_visible()
    await expect(section.locator(".project-action")).to_have_count(0)
    assert watch.errors == []
    await context.close()
