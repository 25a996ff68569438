"""The Terminals page in a real browser: four terminals on two sources (two containers
through a docker engine, two through an ssh target, all on the test dockerd), each with
its own output; broadcast input on (banner shown, one command reaches all four) and off
again; closing one panel ends its session (audited) while the others keep working; the
grid comes back from the address on reload as new sessions; a viewer is offered nothing."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

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
    screenshot,
)


@pytest.fixture
def testenv_docker(testenv: TestEnv) -> Iterator[TestEnv]:
    """live_app's environment without its "remove every container" at the end: the
    dockerd is shared with other tests, so this module removes its own containers only."""
    yield testenv


@pytest.fixture
def grid_containers(testenv: TestEnv) -> Iterator[list[str]]:
    tag = secrets.token_hex(3)
    names = [f"grid-{tag}-{i}" for i in range(1, 5)]
    try:
        for name in names:
            testenv.run_container(name, ["sleep", "3600"], extra_args=["--stop-timeout", "1"])
        yield names
    finally:
        testenv.docker("rm", "-f", *names, check=False)


def _rows(panel):  # type: ignore[no-untyped-def]
    return panel.locator(".xterm-rows > div")


def _line(text: str) -> re.Pattern[str]:
    """A terminal row that is exactly this output (not the command line echoing it)."""
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


async def _type_in(page, panel, text: str) -> None:  # type: ignore[no-untyped-def]
    await panel.locator(".term-host").click()
    await page.keyboard.type(text)


async def _wait_listed(live: LiveApp, page, picker, name: str) -> None:  # type: ignore[no-untyped-def]
    """A host added a moment ago may not have listed its containers yet: reload the
    picker's list until the container is in it."""
    option = picker.locator(f'option[value="{name}"]')
    loading = picker.locator("option", has_text="Loading")
    deadline = time.monotonic() + 20
    while True:
        # Each reload starts the list again ("Loading…"): let one finish before judging
        # it, or a loaded machine whose answers take longer than the pause never shows one.
        await expect(loading).to_have_count(0, timeout=15_000)
        if await option.count():
            return
        if time.monotonic() > deadline:
            started = time.monotonic()
            status, body = await live.api("GET", "/api/hosts?noprobe=1")
            took = time.monotonic() - started
            raise AssertionError(
                f"{name} not listed: {await picker.inner_text()!r}; hosts ({took:.2f} s): {status} {body}"
            )
        await asyncio.sleep(0.3)
        await page.get_by_role("button", name="Reload list").click()


async def _audit(live: LiveApp, action: str, names: list[str]) -> list[dict[str, Any]]:
    status, body = await live.api("GET", f"/api/audit?action={action}&limit=500")
    assert status == 200, body
    return [r for r in body if r.get("container") in names]


async def _wait_audit(live: LiveApp, action: str, names: list[str], count: int) -> list[dict]:
    deadline = time.monotonic() + 15
    while True:
        rows = await _audit(live, action, names)
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"{action}: {rows}"
        await asyncio.sleep(0.2)


async def test_grid_of_four_terminals_broadcast_and_close(
    browser, live_app: LiveApp, testenv: TestEnv, grid_containers: list[str]
) -> None:  # type: ignore[no-untyped-def]
    names = grid_containers
    docker_id = await add_docker_host(live_app, testenv.docker_unix_url, name="engine-a")
    ssh_id = await add_ssh_host(live_app, testenv, name="vm-b")
    plan = [(docker_id, names[0]), (docker_id, names[1]), (ssh_id, names[2]), (ssh_id, names[3])]

    context, page, watch = await new_page(browser, live_app, width=1400, height=940)
    await login(page, "alice", "alice-password-1")
    await expect(page.get_by_role("link", name="Terminals")).to_be_visible()
    await page.get_by_role("link", name="Terminals").click()
    await page.wait_for_url("**/terminals")
    await page.get_by_label("Columns").select_option("2")

    host_picker = page.get_by_label("Host", exact=True)
    container_picker = page.get_by_label("Container", exact=True)
    for host_id, name in plan:
        await expect(host_picker.locator(f'option[value="{host_id}"]')).to_have_count(1)
        await host_picker.select_option(host_id)
        await _wait_listed(live_app, page, container_picker, name)
        await container_picker.select_option(name)
        await page.get_by_label("Shell").select_option("sh")
        await page.get_by_role("button", name="Add terminal").click()

    panels = page.locator(".term-panel")
    await expect(panels).to_have_count(4)
    for i, (host_id, name) in enumerate(plan):
        panel = panels.nth(i)
        await expect(panel).to_have_attribute("data-connected", "1")
        await expect(panel.locator(".term-title")).to_contain_text(f"{name} \u00b7 sh")
    # The grid is in the address, in order.
    query = page.url.split("?", 1)[1]
    assert query.count("t=") == 4 and "cols=2" in query, page.url
    await _wait_audit(live_app, "terminal.open", names, 4)

    # Each terminal its own session: its command's output in it and in no other.
    marks = [f"grid-{i}-{secrets.token_hex(4)}" for i in range(4)]
    for i, mark in enumerate(marks):
        await _type_in(page, panels.nth(i), f"echo {mark}\n")
        await expect(_rows(panels.nth(i)).filter(has_text=_line(mark))).to_have_count(1)
    for i in range(4):
        for j, mark in enumerate(marks):
            if i != j:
                await expect(_rows(panels.nth(i)).filter(has_text=mark)).to_have_count(0)
    # Each on its own container.
    await _type_in(page, panels.nth(2), "hostname\n")
    cid = testenv.docker("inspect", "-f", "{{.Config.Hostname}}", names[2]).strip()
    await expect(_rows(panels.nth(2)).filter(has_text=_line(cid))).to_have_count(1)

    # Broadcast: off by default, then on, announced in words on the page and every panel.
    switch = page.get_by_label("Broadcast input to all terminals")
    banner = page.locator("#term-broadcast-banner")
    await expect(switch).not_to_be_checked()
    await expect(banner).to_be_hidden()
    await switch.check()
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Broadcast is ON")
    for i in range(4):
        await expect(panels.nth(i).locator(".term-panel-broadcast")).to_have_text(
            "BROADCAST ON: input goes to all terminals"
        )
        await expect(panels.nth(i)).to_have_class(re.compile(r"\bin-broadcast\b"))
    everyone = f"all-{secrets.token_hex(4)}"
    await _type_in(page, panels.nth(1), f"echo {everyone}\n")
    for i in range(4):
        await expect(_rows(panels.nth(i)).filter(has_text=_line(everyone))).to_have_count(1)
    await screenshot(page, "terminal-grid")

    # An excluded panel neither receives the broadcast nor sends one.
    await panels.nth(3).get_by_label("Exclude from broadcast").check()
    await expect(panels.nth(3).locator(".term-panel-broadcast")).to_contain_text("Excluded")
    some = f"some-{secrets.token_hex(4)}"
    await _type_in(page, panels.nth(0), f"echo {some}\n")
    for i in range(3):
        await expect(_rows(panels.nth(i)).filter(has_text=_line(some))).to_have_count(1)
    alone = f"alone-{secrets.token_hex(4)}"
    await _type_in(page, panels.nth(3), f"echo {alone}\n")
    await expect(_rows(panels.nth(3)).filter(has_text=_line(alone))).to_have_count(1)
    await expect(_rows(panels.nth(3)).filter(has_text=some)).to_have_count(0)
    await panels.nth(3).get_by_label("Exclude from broadcast").uncheck()

    # Off again: typing reaches one terminal only, at once.
    await switch.uncheck()
    await expect(banner).to_be_hidden()
    await expect(panels.nth(0).locator(".term-panel-broadcast")).to_be_hidden()
    one = f"one-{secrets.token_hex(4)}"
    await _type_in(page, panels.nth(0), f"echo {one}\n")
    await expect(_rows(panels.nth(0)).filter(has_text=_line(one))).to_have_count(1)
    for i in (1, 2, 3):
        await expect(_rows(panels.nth(i)).filter(has_text=one)).to_have_count(0)

    # Resizing a panel resizes its TTY.
    third = panels.nth(2)
    before = int(await third.get_attribute("data-rows") or 0)
    await third.locator(".term-panel-frame").evaluate("el => { el.style.height = '150px'; }")
    await expect(third).not_to_have_attribute("data-rows", str(before))
    rows_now = int(await third.get_attribute("data-rows") or 0)
    cols_now = int(await third.get_attribute("data-cols") or 0)
    assert 0 < rows_now < before
    await _type_in(page, third, "stty size\n")
    await expect(_rows(third).filter(has_text=_line(f"{rows_now} {cols_now}"))).to_have_count(1)

    # Closing a panel ends its session (the server writes its close row); the other
    # three still work.
    closed = names[1]
    await panels.nth(1).get_by_role("button", name="Close").click()
    await expect(panels).to_have_count(3)
    rows = await _wait_audit(live_app, "terminal.close", [closed], 1)
    assert rows[0]["user"] == "alice", rows
    assert await _audit(live_app, "terminal.close", [n for n in names if n != closed]) == []
    assert closed not in page.url
    for i in range(3):
        mark = f"still-{i}-{secrets.token_hex(3)}"
        await _type_in(page, panels.nth(i), f"echo {mark}\n")
        await expect(_rows(panels.nth(i)).filter(has_text=_line(mark))).to_have_count(1)

    # A reload opens the same three terminals as new sessions, broadcast off.
    await page.reload()
    await expect(panels).to_have_count(3)
    for i, name in enumerate(n for n in names if n != closed):
        await expect(panels.nth(i)).to_have_attribute("data-connected", "1")
        await expect(panels.nth(i).locator(".term-title")).to_contain_text(name)
    await expect(page.get_by_label("Broadcast input to all terminals")).not_to_be_checked()
    await expect(page.get_by_label("Columns")).to_have_value("2")
    await _wait_audit(live_app, "terminal.open", names, 7)
    # Two columns side by side; at phone width one column, whatever was chosen.
    boxes = [await panels.nth(i).bounding_box() for i in range(3)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"], boxes
    await page.set_viewport_size({"width": 390, "height": 800})
    await expect(panels.nth(1)).to_be_visible()
    boxes = [await panels.nth(i).bounding_box() for i in range(3)]
    assert len({round(b["x"]) for b in boxes}) == 1, boxes
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"], boxes
    assert all(b["x"] + b["width"] <= 390 for b in boxes), boxes
    assert watch.errors == []
    await context.close()


async def test_viewer_is_offered_no_terminal(browser, live_app: LiveApp) -> None:  # type: ignore[no-untyped-def]
    context, page, watch = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    await expect(page.get_by_role("link", name="Containers", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="Terminals")).to_have_count(0)
    await page.goto("/terminals?t=docker%3A1%2Fsome%2Fsh")
    await expect(page.locator("main")).to_contain_text("Terminals need the admin role")
    await expect(page.locator("#term-add")).to_have_count(0)
    await expect(page.locator(".term-panel")).to_have_count(0)
    assert watch.errors == []
    await context.close()
