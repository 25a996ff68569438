"""Compare two containers in a real browser: one picked from its tab on the docker host,
the second ticked in the ssh host's list; the diff tab highlights what differs and no
secret value ever reaches the page."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import VIEWER_PASSWORD, add_docker_host, add_ssh_host, login, new_page, screenshot

SECRET_A, SECRET_B, SHARED = "pw-alpha-31x9", "pw-bravo-77k2", "token-same-4c4c"


async def test_compare_two_containers_across_sources(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    te.run_container(
        "cmp-blue",
        env={"APP_MODE": "blue", "DB_PASSWORD": SECRET_A, "API_TOKEN": SHARED, "SHARED": "1"},
        labels={"tier": "web", "owner": "team-a"},
    )
    te.run_container(
        "cmp-green",
        env={"APP_MODE": "green", "DB_PASSWORD": SECRET_B, "API_TOKEN": SHARED, "SHARED": "1"},
        labels={"tier": "web", "owner": "team-b"},
    )
    docker_id = await add_docker_host(live_app, te.docker_unix_url)
    ssh_id = await add_ssh_host(live_app, te)

    context, page, watch = await new_page(browser, live_app, width=1280, height=900)
    await login(page, "victor", VIEWER_PASSWORD)  # viewers may compare
    await page.locator(f'.host-link[data-host="{docker_id}"]').click()
    opener = page.locator('#container-list .open-container[data-name="cmp-blue"]')
    await opener.click()
    detail = page.locator(f'.detail[data-name="cmp-blue"][data-host="{docker_id}"]')
    await expect(detail).to_be_visible()

    # "Compare with…" in the tab picks it and goes back to the list for the second one.
    await detail.get_by_role("button", name="Compare with…").click()
    bar = page.locator("#compare-bar")
    await expect(bar).to_contain_text("Pick a container to compare with cmp-blue")
    await expect(bar.get_by_role("button", name="Compare", exact=True)).to_be_disabled()
    await page.locator(f'.host-link[data-host="{ssh_id}"]').click()
    await expect(
        page.locator(f'#container-list .host-summary[data-host="{ssh_id}"]')
    ).to_be_attached()
    await page.get_by_label("Compare cmp-green", exact=True).check()
    await expect(bar).to_contain_text(f"Compare cmp-blue ({docker_id}) with cmp-green ({ssh_id})")
    await bar.get_by_role("button", name="Compare", exact=True).click()

    table = page.get_by_role("table", name="Differences between cmp-blue and cmp-green")
    await expect(table).to_be_visible()

    def row(field: str):  # type: ignore[no-untyped-def]
        return table.locator(f'tr[data-field="{field}"]')

    for field in ("env.APP_MODE", "env.DB_PASSWORD", "labels.owner"):
        await expect(row(field)).to_have_class("diff-row diff-differs")
        await expect(row(field).locator(".diff-verdict")).to_have_text("differs")
    for field in ("image", "command", "env.SHARED", "env.API_TOKEN", "labels.tier"):
        await expect(row(field)).to_have_class("diff-row diff-same")
    await expect(row("env.APP_MODE")).to_contain_text("blue")
    await expect(row("env.APP_MODE")).to_contain_text("green")
    await expect(row("env.DB_PASSWORD")).to_contain_text("****")
    # The highlight is visible: a differing row has a background of its own.
    differs_bg = await row("env.APP_MODE").evaluate("r => getComputedStyle(r).backgroundColor")
    same_bg = await row("image").evaluate("r => getComputedStyle(r).backgroundColor")
    assert differs_bg != same_bg

    html = await page.content()
    for secret in (SECRET_A, SECRET_B, SHARED):
        assert secret not in html
    await screenshot(page, "container-diff")

    await page.get_by_label("Only differences").check()
    await expect(row("image")).to_be_hidden()
    await expect(row("env.APP_MODE")).to_be_visible()
    await page.get_by_role("button", name="Close cmp-blue \u2194 cmp-green").click()
    await expect(table).to_have_count(0)
    assert watch.errors == []
    await context.close()
