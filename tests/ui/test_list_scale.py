"""The container list at scale in a real browser: the server filters, sorts and pages
(the page holds one page of rows), the URL keeps the view, "/" focuses the filter, and
dark mode follows the system setting on every page.

The test dockerd is shared: containers here carry a unique prefix and only those are
removed afterwards (this module's ``testenv_docker`` replaces the one that removes all)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import expect

from .conftest import add_docker_host, login, new_page, screenshot

PROJECT = "com.docker.compose.project"


@pytest.fixture
def prefix() -> str:
    return f"sc{secrets.token_hex(3)}"


@pytest.fixture
def testenv_docker(testenv, prefix) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    try:
        yield testenv
    finally:
        ids = testenv.docker("ps", "-aq", "--filter", f"name=^/{prefix}-").split()
        if ids:
            testenv.docker("rm", "-f", *ids, check=False)  # others may have removed some


def _make(te, prefix: str, count: int = 7) -> list[str]:  # type: ignore[no-untyped-def]
    names = []
    for i in range(count):
        name = f"{prefix}-{chr(ord('a') + i)}"
        project = f"{prefix}shop" if i % 2 == 0 else f"{prefix}data"
        te.run_container(name, labels={PROJECT: project}, extra_args=["--stop-timeout", "1"])
        names.append(name)
    return names


def _names(page):  # type: ignore[no-untyped-def]
    return page.locator("#container-list tbody .open-container")


async def test_filter_sort_page_on_the_server(browser, live_app, testenv_docker, prefix) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    names = _make(te, prefix)
    host_id = await add_docker_host(live_app, te.docker_unix_url)
    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    # A link with the view in it: this host, this run's containers, three a page,
    # stopped ones too (a row stopped below must stay listed: in the running-only list
    # it leaves at the next live reload).
    await page.goto(f"/containers?host={host_id}&q={prefix}&size=3&all=1")
    filt = page.get_by_label("Filter containers")
    await expect(filt).to_have_value(prefix)
    await expect(_names(page)).to_have_text(names[:3])
    count = page.locator("#container-list .list-count")
    await expect(count).to_contain_text(re.compile(r"1\u20133\s+of\s+7"))

    # Typing narrows on the server: the request carries q, the page holds only matches.
    requests: list[str] = []
    page.on("request", lambda r: "/ui/hosts/" in r.url and requests.append(r.url))
    async with page.expect_response(lambda r: f"q={prefix}-b" in r.url.replace("%2D", "-")):
        await filt.fill(f"{prefix}-b")
    await expect(_names(page)).to_have_text([f"{prefix}-b"])
    assert any(f"q={prefix}-b" in u for u in requests), requests
    await expect(count).to_contain_text(re.compile(r"1\s+of\s+1\s+containers matching"))
    assert f"q={prefix}-b" in page.url
    await filt.fill(prefix)
    await expect(_names(page)).to_have_text(names[:3])

    # Sorting by name flips the order: the header says which way.
    name_header = page.get_by_role("columnheader", name="Name")
    await expect(name_header).to_have_attribute("aria-sort", "ascending")
    await name_header.get_by_role("button").click()
    await expect(name_header).to_have_attribute("aria-sort", "descending")
    await expect(_names(page)).to_have_text(names[::-1][:3])
    assert "order=desc" in page.url and "sort=name" in page.url

    # Next shows the next page; the URL keeps it, a reload restores the view.
    await page.get_by_role("button", name="Next").click()
    await expect(_names(page)).to_have_text(names[::-1][3:6])
    await expect(page.get_by_role("button", name="Next")).to_be_focused()
    await expect(count).to_contain_text(re.compile(r"4\u20136\s+of\s+7"))
    assert "page=2" in page.url
    await page.reload()
    await expect(_names(page)).to_have_text(names[::-1][3:6])
    await expect(page.get_by_label("Filter containers")).to_have_value(prefix)
    await page.get_by_role("button", name="Previous").click()
    await expect(_names(page)).to_have_text(names[::-1][:3])
    await page.get_by_role("button", name="Next").click()

    # The quick actions of a row on page 2 act on that container and refresh that row.
    row = page.locator("#container-list tbody tr", has=page.locator(f'[data-name="{names[3]}"]'))
    assert await row.get_attribute("data-id") == te.docker("inspect", "-f", "{{.Id}}", names[3])
    await row.get_by_role("button", name=f"Stop {names[3]}", exact=True).click()
    await expect(row.locator(".state-badge")).to_have_text("exited")
    await expect(row.locator(".row-result")).to_contain_text("stop: done")
    assert te.docker("inspect", "-f", "{{.State.Status}}", names[3]) == "exited"
    await row.get_by_role("button", name=f"Start {names[3]}", exact=True).click()
    await expect(row.locator(".state-badge")).to_have_text("running")

    # Rows per page.
    await page.get_by_label("Rows per page").select_option("50")
    await expect(_names(page)).to_have_count(7)
    assert "size=50" in page.url and "page=" not in page.url

    # A Projects-page link: every host, one project; the filter shows and clears.
    await page.goto(f"/containers?host=all&project={prefix}shop&sort=name")
    await expect(_names(page)).to_have_text(names[::2])
    chips = page.locator("#container-list .active-filters")
    await expect(chips).to_contain_text(f"{prefix}shop")
    await chips.get_by_role("button", name="Clear filters").click()
    await expect(page.locator("#container-list .active-filters")).to_have_count(0)
    assert "project=" not in page.url
    await filt.fill(prefix)
    await expect(_names(page)).to_have_count(7)
    assert watch.errors == []
    await context.close()


async def test_slash_focuses_the_filter(browser, live_app, testenv_docker, prefix) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    names = _make(te, prefix, count=1)
    host_id = await add_docker_host(live_app, te.docker_unix_url)
    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await page.goto(f"/containers?host={host_id}&q={prefix}")
    filt = page.get_by_label("Filter containers")
    await expect(_names(page)).to_have_text(names)
    await page.locator("#list-title").click()
    await page.keyboard.press("/")
    await expect(filt).to_be_focused()
    await expect(filt).to_have_value(prefix)  # the "/" was not typed into it
    await page.keyboard.press("Escape")
    await expect(filt).not_to_be_focused()
    await expect(filt).to_have_value(prefix)  # leaving is not clearing
    # From a container's tab too: back to the list, in the filter.
    await page.locator(f'#container-list .open-container[data-name="{names[0]}"]').click()
    await expect(page.locator(f'.detail[data-name="{names[0]}"]')).to_be_visible()
    await page.locator(".detail-head h2").click()
    await page.keyboard.press("/")
    await expect(filt).to_be_focused()
    await expect(page.get_by_role("tab", name="Containers", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    # In a field "/" is just a character.
    await page.keyboard.type(" x/y")
    await expect(filt).to_have_value(f"{prefix} x/y")
    assert watch.errors == []
    await context.close()


# Every element with its own text: its colour against its background (the first opaque
# one up the tree), as the WCAG contrast ratio. The terminal draws its own colours.
CONTRAST_JS = """
(minimum) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let base = { r: 255, g: 255, b: 255 };
    if (layers.length && layers[layers.length - 1].a >= 1) base = layers.pop();
    for (const l of layers.reverse()) {
      base = { r: l.r * l.a + base.r * (1 - l.a), g: l.g * l.a + base.g * (1 - l.a), b: l.b * l.a + base.b * (1 - l.a) };
    }
    return base;
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest(".xterm, [hidden], template, script, style, option")) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === "hidden" || cs.display === "none" || !el.getClientRects().length) continue;
    if (el.closest(":disabled") || el.closest(".visually-hidden")) continue;
    const fg = parse(cs.color), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < minimum) bad.push(`${el.tagName.toLowerCase()}.${el.className}: "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)} (${cs.color} on rgb(${bg.r},${bg.g},${bg.b}))`);
  }
  return bad;
}
"""


async def _readable(page, where: str) -> None:  # type: ignore[no-untyped-def]
    # 4.5: WCAG AA for body text.
    bad = await page.evaluate(CONTRAST_JS, 4.5)
    assert bad == [], f"{where}: text hard to read in dark mode: {bad}"


async def _background(page) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    colour = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    return tuple(int(v) for v in re.findall(r"\d+", colour)[:3])


async def test_dark_mode_follows_the_system(browser, live_app, testenv_docker, prefix) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    names = _make(te, prefix, count=3)
    te.docker("stop", "-t", "1", names[2])
    host_id = await add_docker_host(live_app, te.docker_unix_url)

    light, page, _ = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    assert sum(await _background(page)) > 600  # light by default
    await light.close()

    context = await browser.new_context(
        viewport={"width": 1280, "height": 860}, base_url=live_app.base_url, color_scheme="dark"
    )
    page = await context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto("/containers")
    await expect(page.get_by_label("Username")).to_be_visible()
    assert sum(await _background(page)) < 150  # dark, from the system setting alone
    await _readable(page, "login")
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill("alice-password-1")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/containers**")

    await page.goto(f"/containers?host={host_id}&q={prefix}&all=1&size=2")
    await expect(_names(page)).to_have_count(2)
    panel_bg = await page.locator("#panel-containers").evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert sum(int(v) for v in re.findall(r"\d+", panel_bg)[:3]) < 200, panel_bg
    await page.locator("#container-list tbody tr").first.hover()
    await _readable(page, "containers")
    await page.get_by_label(f"Compare {names[0]}", exact=True).check()
    await page.get_by_role("button", name="Next").click()
    await expect(_names(page)).to_have_text([names[2]])
    await page.get_by_label(f"Compare {names[2]}", exact=True).check()
    await page.mouse.move(0, 0)
    await screenshot(page, "containers-dark")
    await _readable(page, "containers, page 2")
    await page.locator("#compare-bar").get_by_role("button", name="Compare", exact=True).click()
    await expect(page.locator(".diff-table")).to_be_visible()
    await _readable(page, "diff")

    await page.get_by_role("tab", name="Containers", exact=True).click()
    await page.locator(f'#container-list .open-container[data-name="{names[2]}"]').click()
    detail = page.locator(f'.detail[data-name="{names[2]}"]')
    await expect(detail).to_be_visible()
    for tab in ("Overview", "State", "Env", "Labels", "Logs", "Terminal"):
        await detail.get_by_role("tab", name=tab, exact=True).click()
        await _readable(page, f"detail: {tab}")

    await page.goto("/settings")
    links = await page.locator(".settings-nav a").evaluate_all("els => els.map(a => a.href)")
    assert links
    for href in [*links, f"{live_app.base_url}/account"]:
        await page.goto(href)
        await _readable(page, href)
    assert errors == []
    await context.close()
