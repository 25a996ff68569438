"""The Containers page in a real browser against the real sources (issue 6, "done when")."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from .conftest import (
    add_docker_host,
    add_ssh_host,
    login,
    new_page,
    report_from_agent,
    screenshot,
)

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def _make_containers(te) -> None:  # type: ignore[no-untyped-def]
    te.run_container(
        "ui-web",
        ["sh", "-c", "echo web booted; while true; do sleep 1; done"],
        env={"API_SECRET_TOKEN": "s3cr3t-value", "GREETING": "hello"},
        labels={"com.example.team": "platform"},
        ports=["8080:80"],
    )
    te.run_container("ui-worker", ["sleep", "3600"])
    te.run_container("ui-oneshot", ["true"])  # exits at once: only with "Show stopped"


def _host_link(page, host_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.host-link[data-host="{host_id}"]')


def _row(page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("#container-list tbody tr", has=page.locator(f'[data-name="{name}"]'))


async def _pick_host(page, host_id: str) -> None:  # type: ignore[no-untyped-def]
    await _host_link(page, host_id).click()
    await expect(
        page.locator(f'#container-list .host-summary[data-host="{host_id}"]')
    ).to_be_attached()


async def _open(page, name: str):  # type: ignore[no-untyped-def]
    await page.locator(f'#container-list .open-container[data-name="{name}"]').click()
    panel = page.locator(f'.detail[data-name="{name}"]')
    await expect(panel).to_be_visible()
    return panel


async def test_hosts_of_every_source_tabs_survive_reload(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    _make_containers(te)
    docker_id = await add_docker_host(live_app, te.docker_unix_url)
    ssh_id = await add_ssh_host(live_app, te)
    agent_id = await report_from_agent(live_app, te)

    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")

    # Grouped by source, each with a status badge.
    for source, host_id in (("docker", docker_id), ("ssh", ssh_id), ("agent", agent_id)):
        link = _host_link(page, host_id)
        await expect(link).to_be_visible()
        assert await link.get_attribute("data-source") == source
        await expect(link.locator(".badge")).to_have_text("ok")

    # Every source lists the same daemon's running containers; stopped ones on request.
    for host_id in (ssh_id, agent_id, docker_id):
        await _pick_host(page, host_id)
        assert f"host={host_id}" in page.url.replace("%3A", ":")
        await expect(_row(page, "ui-web")).to_be_visible()
        await expect(_row(page, "ui-web").locator(".state")).to_have_text("running")
        await expect(_row(page, "ui-oneshot")).to_have_count(0)
    await page.get_by_label("Show stopped").check()
    await expect(_row(page, "ui-oneshot")).to_be_visible()
    await expect(_row(page, "ui-oneshot").locator(".state")).to_have_text("exited")
    await page.get_by_label("Filter containers").fill("work")
    await expect(_row(page, "ui-web")).to_be_hidden()
    await expect(_row(page, "ui-worker")).to_be_visible()
    await page.get_by_label("Filter containers").fill("")
    await screenshot(page, "containers-list")

    # Two detail tabs; env values that look secret are masked.
    web = await _open(page, "ui-web")
    await web.get_by_role("tab", name="Env").click()
    env_row = web.locator("table.env tr", has_text="API_SECRET_TOKEN")
    await expect(env_row).to_contain_text("****")
    await expect(web.locator("table.env")).not_to_contain_text("s3cr3t-value")
    await expect(web.locator("table.env tr", has_text="GREETING")).to_contain_text("hello")
    await web.get_by_role("tab", name="Labels").click()
    await expect(web).to_contain_text("com.example.team")
    await web.get_by_role("tab", name="Overview").click()
    await screenshot(page, "container-detail")
    await page.get_by_role("tab", name="Containers", exact=True).click()
    await _open(page, "ui-worker")
    tabs = page.locator("#main-tabs [role=tab]")
    await expect(tabs).to_have_count(3)
    await page.get_by_role("button", name="Close ui-worker").click()
    await expect(tabs).to_have_count(2)

    await page.reload()
    await expect(page.locator("#main-tabs [role=tab]")).to_have_count(2)
    restored = page.get_by_role("tab", name="ui-web")
    await expect(restored).to_have_attribute("aria-selected", "true")
    await expect(page.locator('.detail[data-name="ui-web"]')).to_be_visible()
    await expect(page.get_by_role("tab", name="ui-worker")).to_have_count(0)

    # The agent host is read-only: last report time, no buttons, no terminal.
    await _pick_host(page, agent_id)
    await expect(page.locator("#container-list .note-readonly")).to_contain_text("Last report")
    agent_detail = await _open(page, "ui-worker")
    await expect(agent_detail.locator(".btn-action")).to_have_count(0)
    await agent_detail.get_by_role("tab", name="Terminal").click()
    await expect(agent_detail).to_contain_text("not available from this source")
    await screenshot(page, "agent-read-only")

    assert watch.errors == []
    await context.close()
