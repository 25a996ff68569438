"""The Containers page in a real browser against the real sources (issue 6, "done when")."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from .conftest import (
    VIEWER_PASSWORD,
    add_docker_host,
    add_ssh_host,
    login,
    new_page,
    report_from_agent,
    screenshot,
)


def _make_containers(te) -> None:  # type: ignore[no-untyped-def]
    te.run_container(
        "ui-web",
        ["sh", "-c", "echo web booted; while true; do sleep 1; done"],
        env={"API_SECRET_TOKEN": "s3cr3t-value", "GREETING": "hello"},
        labels={"com.example.team": "platform"},
        ports=["8080:80"],
        extra_args=["--stop-timeout", "1"],
    )
    te.run_container("ui-worker", ["sleep", "3600"], extra_args=["--stop-timeout", "1"])
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


async def _no_sideways_scroll(page) -> None:  # type: ignore[no-untyped-def]
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"


async def _docker_and_ssh(live, te) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    _make_containers(te)
    return await add_docker_host(live, te.docker_unix_url), await add_ssh_host(live, te)


async def _open(page, name: str):  # type: ignore[no-untyped-def]
    opener = page.locator(f'#container-list .open-container[data-name="{name}"]')
    host_id = await opener.get_attribute("data-host")
    await opener.click()
    panel = page.locator(f'.detail[data-name="{name}"][data-host="{host_id}"]')
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
    await web.get_by_role("tab", name="Stats").click()
    stats = web.locator("dl.stats")
    await expect(stats).to_contain_text("CPU")
    await expect(stats).to_contain_text(re.compile(r"Memory\s*[\d.]+ (B|KiB|MiB)"))
    await screenshot(page, "container-stats")
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


async def _stop_and_start(page, name: str) -> None:  # type: ignore[no-untyped-def]
    detail = await _open(page, name)
    badge = detail.locator(".detail-head .state")
    await expect(badge).to_have_text("running")
    await detail.get_by_role("button", name="Stop", exact=True).click()
    await expect(detail.locator(".detail-head .state")).to_have_text("exited")
    await expect(detail.locator(".action-result")).to_contain_text("stop")
    await expect(detail.get_by_role("button", name="Start", exact=True)).to_be_enabled()
    await detail.get_by_role("button", name="Start", exact=True).click()
    await expect(detail.locator(".detail-head .state")).to_have_text("running")
    await expect(detail.locator(".action-result")).to_contain_text("start")
    # The list behind the tab was refreshed too.
    await expect(_row(page, name).locator(".state")).to_have_text("running")


async def test_admin_stops_and_starts_viewer_sees_no_buttons(
    browser, live_app, testenv_docker
) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    _make_containers(te)
    docker_id = await add_docker_host(live_app, te.docker_unix_url)
    ssh_id = await add_ssh_host(live_app, te)

    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await _pick_host(page, docker_id)
    await _stop_and_start(page, "ui-web")
    await screenshot(page, "container-actions")
    await page.get_by_role("tab", name="Containers", exact=True).click()
    await _pick_host(page, ssh_id)
    await _stop_and_start(page, "ui-worker")
    assert te.docker("inspect", "-f", "{{.State.Status}}", "ui-worker") == "running"

    # Remove asks first: dismissing keeps the container, accepting removes it.
    await page.get_by_role("tab", name="Containers", exact=True).click()
    await page.get_by_label("Show stopped").check()
    oneshot = await _open(page, "ui-oneshot")
    page.once("dialog", lambda d: d.dismiss())
    await oneshot.get_by_role("button", name="Remove", exact=True).click()
    await expect(oneshot).to_be_visible()
    assert "ui-oneshot" in te.docker("ps", "-a", "--format", "{{.Names}}")
    page.once("dialog", lambda d: d.accept())
    await oneshot.get_by_role("button", name="Remove", exact=True).click()
    await expect(page.locator("#flash")).to_contain_text("Removed ui-oneshot")
    await expect(page.get_by_role("tab", name="ui-oneshot")).to_have_count(0)
    await expect(_row(page, "ui-oneshot")).to_have_count(0)
    assert "ui-oneshot" not in te.docker("ps", "-a", "--format", "{{.Names}}")

    # A failing action is shown inline, not swallowed: pause a container stopped meanwhile.
    await _pick_host(page, docker_id)
    worker = await _open(page, "ui-worker")
    te.docker("stop", "-t", "1", "ui-worker")
    await worker.get_by_role("button", name="Pause", exact=True).click()
    alert = worker.locator(".action-result[role=alert]")
    await expect(alert).to_contain_text("pause failed")
    await expect(worker.locator(".detail-head .state")).to_have_text("exited")
    # The browser logs the refused request itself; nothing else may be logged.
    assert [e for e in watch.errors if "status of 409" not in e] == []
    await context.close()

    # A viewer gets the same page without any buttons, and the API refuses anyway.
    context, page, watch = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    await _pick_host(page, docker_id)
    web = await _open(page, "ui-web")
    await expect(web.locator(".btn-action")).to_have_count(0)
    await expect(web).to_contain_text("need the admin role")
    await web.get_by_role("tab", name="Terminal").click()
    await expect(web).to_contain_text("The terminal needs the admin role")
    resp = await page.request.post(
        f"{live_app.base_url}/api/hosts/{docker_id}/containers/ui-web/stop",
        headers={"Origin": live_app.base_url},
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    assert te.docker("inspect", "-f", "{{.State.Status}}", "ui-web") == "running"
    await screenshot(page, "viewer-read-only")
    assert watch.errors == []
    await context.close()


@pytest.mark.parametrize("source", ["docker", "ssh"])
async def test_logs_follow_and_terminal(browser, live_app, testenv_docker, source) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    _make_containers(te)
    if source == "docker":
        host_id = await add_docker_host(live_app, te.docker_unix_url)
    else:
        host_id = await add_ssh_host(live_app, te)
    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await _pick_host(page, host_id)
    web = await _open(page, "ui-web")

    await web.get_by_role("tab", name="Logs").click()
    output = web.locator(".log-output")
    await expect(output).to_contain_text("web booted")  # the tail loads on first visit
    await web.get_by_label("Tail", exact=True).fill("50")
    await web.get_by_label("Timestamps", exact=True).check()
    await web.get_by_role("button", name="Load", exact=True).click()
    await expect(output).to_contain_text("web booted")
    await expect(output).to_contain_text(re.compile(r"\d{4}-\d\d-\d\dT"))
    download = web.get_by_role("link", name="Download")
    href = await download.get_attribute("href")
    # The whole log, streamed, with the tab's timestamp choice.
    assert href and href.endswith("/containers/ui-web/logs/download?timestamps=1")
    async with page.expect_download() as info:
        await download.click()
    got = await info.value
    assert re.fullmatch(r"ui-web-(docker|ssh)-\d+-\d{8}T\d{6}Z\.log", got.suggested_filename)
    text = open(await got.path()).read()
    assert re.search(r"^\d{4}-\d\d-\d\dT\S+Z web booted$", text, re.M), text[:300]

    await web.get_by_label("Timestamps", exact=True).uncheck()
    await web.get_by_role("button", name="Follow", exact=True).click()
    await expect(web.locator(".log-status")).to_contain_text("Following live")
    te.docker("exec", "ui-web", "sh", "-c", "echo printed-after-follow > /proc/1/fd/1")
    await expect(output).to_contain_text("printed-after-follow")
    if source == "docker":
        await screenshot(page, "container-logs")
    await web.get_by_role("button", name="Stop following").click()
    await expect(web.locator(".log-status")).to_contain_text("Stopped following")

    await web.get_by_role("tab", name="Terminal").click()
    await web.get_by_role("button", name="Connect", exact=True).click()
    box = web.locator(".terminal-box")
    await expect(web.locator(".term-status")).to_contain_text("Connected")
    await expect(box).to_have_attribute("data-connected", "1")
    await web.locator(".term-host").click()
    await page.keyboard.type("echo hi\n")
    rows = web.locator(".xterm-rows > div")
    await expect(rows.filter(has_text=re.compile(r"^\s*hi\s*$"))).to_have_count(1)

    # Resizing the panel resizes the TTY: the shell sees the new row count.
    before = int(await box.get_attribute("data-rows") or 0)
    await web.locator(".term-frame").evaluate("el => { el.style.height = '180px'; }")
    await expect(box).not_to_have_attribute("data-rows", str(before))
    after = int(await box.get_attribute("data-rows") or 0)
    cols = int(await box.get_attribute("data-cols") or 0)
    assert 0 < after < before
    await page.keyboard.type("stty size\n")
    await expect(rows.filter(has_text=re.compile(rf"^\s*{after} {cols}\s*$"))).to_have_count(1)
    await web.locator(".term-frame").evaluate("el => { el.style.height = ''; }")
    await page.keyboard.type("clear; echo hi; ls /\n")
    await expect(rows.filter(has_text=re.compile(r"^\s*hi\s*$"))).to_have_count(1)
    if source == "docker":
        await screenshot(page, "container-terminal")
    await web.get_by_role("button", name="Disconnect", exact=True).click()
    await expect(box).to_have_attribute("data-connected", "0")
    assert watch.errors == []
    await context.close()


async def test_phone_width_and_keyboard_tabs(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    _make_containers(te)
    docker_id = await add_docker_host(live_app, te.docker_unix_url)
    await add_docker_host(live_app, "tcp://127.0.0.1:9", name="engine-down")

    context, page, watch = await new_page(browser, live_app, width=390, height=844)
    await login(page, "alice", "alice-password-1")
    # The failing host says why, visibly (not only on hover) at phone width.
    down = page.locator(".host-link", has_text="engine-down")
    await expect(down.locator(".badge")).to_have_text("error")
    await expect(down.locator(".host-error")).to_be_visible()
    assert "error" in (await down.get_attribute("title") or "")
    await _pick_host(page, docker_id)
    await expect(_row(page, "ui-web")).to_be_visible()
    # Once a host is picked the host list folds behind a toggle naming it.
    toggle = page.locator("#hosts-toggle")
    await expect(toggle).to_contain_text("engine-local")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(down).to_be_hidden()
    await _no_sideways_scroll(page)
    await screenshot(page, "phone-list")
    web = await _open(page, "ui-web")
    await expect(web.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    await _no_sideways_scroll(page)
    await screenshot(page, "phone-detail")
    await toggle.click()
    await expect(down).to_be_visible()
    await toggle.click()

    # Keyboard: arrows move between tabs, Delete closes a container tab.
    containers_tab = page.get_by_role("tab", name="Containers", exact=True)
    await containers_tab.focus()
    await page.keyboard.press("ArrowRight")
    web_tab = page.get_by_role("tab", name="ui-web")
    await expect(web_tab).to_be_focused()
    await expect(web_tab).to_have_attribute("aria-selected", "true")
    await web.get_by_role("tab", name="Overview").focus()
    await page.keyboard.press("ArrowRight")
    await expect(web.get_by_role("tab", name="State")).to_have_attribute("aria-selected", "true")
    await expect(web.get_by_role("tabpanel", name="State")).to_be_visible()
    await page.keyboard.press("End")
    await expect(web.get_by_role("tab", name="Terminal")).to_be_focused()
    await web_tab.focus()
    await page.keyboard.press("Delete")
    await expect(page.get_by_role("tab", name="ui-web")).to_have_count(0)
    await expect(containers_tab).to_have_attribute("aria-selected", "true")
    # The browser logs nothing for a host that is down: its error is in the page.
    assert watch.errors == []
    await context.close()


def _host_row(page, host_id: str, name: str):  # type: ignore[no-untyped-def]
    return page.locator(
        f'#container-list tbody tr[data-host="{host_id}"]',
        has=page.locator(f'[data-name="{name}"]'),
    )


async def _pick_all_hosts(page) -> None:  # type: ignore[no-untyped-def]
    await page.get_by_role("link", name=re.compile(r"^All hosts")).click()
    await expect(page.locator('#container-list .host-summary[data-host="all"]')).to_be_attached()
    await expect(page.locator("#list-title")).to_contain_text("All hosts")


async def test_all_hosts_one_table_with_host_warnings(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    docker_id, ssh_id = await _docker_and_ssh(live_app, te)
    agent_id = await report_from_agent(live_app, te)
    dead_id = await add_docker_host(live_app, "tcp://127.0.0.1:1", name="engine-dead")

    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await _pick_all_hosts(page)
    assert "host=all" in page.url
    table = page.get_by_role("table", name="Containers on all hosts")
    await expect(table.get_by_role("columnheader", name="Host")).to_be_visible()
    # One table with every working host's containers, each row naming its host and source.
    for source, host_id in (("docker", docker_id), ("ssh", ssh_id), ("agent", agent_id)):
        row = _host_row(page, host_id, "ui-web")
        await expect(row).to_be_visible()
        await expect(row.locator(".col-host .badge-source")).to_have_text(source)
        await expect(row.locator(".state")).to_have_text("running")
    # Agent rows are read-only; docker and ssh rows get quick actions.
    await expect(_host_row(page, agent_id, "ui-web").locator(".row-action")).to_have_count(0)
    await expect(
        _host_row(page, ssh_id, "ui-web").get_by_role("button", name="Stop ui-web", exact=True)
    ).to_be_visible()
    # The dead engine is an inline warning with its error; the rest still lists.
    warning = page.locator(f'#container-list .host-warning[data-host="{dead_id}"]')
    await expect(warning).to_contain_text("engine-dead")
    await expect(warning.locator(".error-message")).not_to_be_empty()
    await expect(page.locator(f'#container-list tbody tr[data-host="{dead_id}"]')).to_have_count(0)
    await expect(_host_row(page, docker_id, "ui-oneshot")).to_have_count(0)
    await page.get_by_label("Show stopped").check()
    await expect(_host_row(page, docker_id, "ui-oneshot")).to_be_visible()
    await expect(_host_row(page, ssh_id, "ui-oneshot").locator(".state")).to_have_text("exited")
    await screenshot(page, "all-hosts")

    # The filter matches host names too.
    await page.get_by_label("Filter containers").fill("ssh-target")
    await expect(_host_row(page, ssh_id, "ui-worker")).to_be_visible()
    await expect(_host_row(page, docker_id, "ui-worker")).to_be_hidden()
    await expect(_host_row(page, agent_id, "ui-worker")).to_be_hidden()
    await page.get_by_label("Filter containers").fill("")
    # The cleared filter has reached the server (and the URL a reload restores).
    await expect(_host_row(page, agent_id, "ui-worker")).to_be_visible()

    # A row opens its detail tab for its own host, as from a single host's list.
    await _host_row(page, ssh_id, "ui-worker").locator(".open-container").click()
    detail = page.locator(f'.detail[data-name="ui-worker"][data-host="{ssh_id}"]')
    await expect(detail).to_be_visible()
    await page.reload()
    await expect(detail).to_be_visible()
    await page.get_by_role("tab", name="Containers", exact=True).click()
    await expect(_host_row(page, agent_id, "ui-web")).to_be_visible()

    # Phone width: the table scrolls inside its box, the page does not.
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(_host_row(page, docker_id, "ui-web")).to_be_visible()
    await _no_sideways_scroll(page)
    assert watch.errors == []
    await context.close()


async def test_row_quick_actions_admin_only(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    docker_id, ssh_id = await _docker_and_ssh(live_app, te)

    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await _pick_host(page, docker_id)
    # Stopped containers stay listed: in the running-only list a stopped row leaves at
    # the next live reload, which on a loaded machine can come before the check below.
    await page.get_by_label("Show stopped").check()
    row = _row(page, "ui-web")
    await row.get_by_role("button", name="Stop ui-web", exact=True).click()
    await expect(row.locator(".state")).to_have_text("exited")
    await expect(row.locator(".row-result")).to_contain_text("stop: done")
    assert te.docker("inspect", "-f", "{{.State.Status}}", "ui-web") == "exited"
    # Keyboard: the same button is now "Start", keeps focus and works with Enter.
    start = row.get_by_role("button", name="Start ui-web", exact=True)
    await expect(start).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(row.locator(".state")).to_have_text("running")
    await expect(row.get_by_role("button", name="Stop ui-web", exact=True)).to_be_enabled()

    # The same from the all-hosts table, on the ssh host's row.
    await _pick_all_hosts(page)
    ssh_row = _host_row(page, ssh_id, "ui-worker")
    await ssh_row.get_by_role("button", name="Restart ui-worker", exact=True).click()
    await expect(ssh_row.locator(".row-result")).to_contain_text("restart: done")
    await expect(ssh_row.locator(".state")).to_have_text("running")
    await ssh_row.get_by_role("button", name="Stop ui-worker", exact=True).click()
    await expect(ssh_row.locator(".state")).to_have_text("exited")
    # Both hosts are the same engine: its event reaches the docker host's row as well,
    # without a reload (the live state), and a fresh list agrees.
    await expect(_host_row(page, docker_id, "ui-worker").locator(".state")).to_have_text("exited")
    await page.get_by_label("Show stopped").check()
    await expect(_host_row(page, docker_id, "ui-worker").locator(".state")).to_have_text("exited")
    await ssh_row.get_by_role("button", name="Start ui-worker", exact=True).click()
    await expect(ssh_row.locator(".state")).to_have_text("running")
    assert watch.errors == []
    await context.close()

    # A viewer sees the same tables without any row buttons.
    context, page, watch = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    await _pick_host(page, docker_id)
    await expect(_row(page, "ui-web")).to_be_visible()
    await expect(page.locator("#container-list .row-action")).to_have_count(0)
    await _pick_all_hosts(page)
    await expect(_host_row(page, ssh_id, "ui-web")).to_be_visible()
    await expect(page.locator("#container-list .row-action")).to_have_count(0)
    await expect(page.get_by_role("columnheader", name="Actions")).to_have_count(0)
    assert watch.errors == []
    await context.close()
