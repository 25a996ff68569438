"""What the Containers page shows when a request fails: the API's error in the region
that was being loaded or acted on, never stale content or silence; and the row actions
rendered from the one server-side table of actions."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import add_docker_host, login, new_page


def _row(page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("#container-list tbody tr", has=page.locator(f'[data-name="{name}"]'))


async def test_signed_out_meanwhile_is_shown_where_it_happened(
    browser, live_app, testenv_docker
) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    te.run_container("err-web", ["sleep", "3600"], extra_args=["--stop-timeout", "1"])
    te.run_container("err-done", ["true"])
    host_id = await add_docker_host(live_app, te.docker_unix_url)
    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await page.locator(f'.host-link[data-host="{host_id}"]').click()
    await expect(
        page.locator(f'#container-list .host-summary[data-host="{host_id}"]')
    ).to_be_attached()
    await page.get_by_label("Show stopped").check()

    # The offered actions follow the container's state (core/_actions.html).
    done = _row(page, "err-done")
    await expect(done.get_by_role("button", name="Start err-done", exact=True)).to_be_enabled()
    await expect(done.get_by_role("button", name="Restart err-done", exact=True)).to_be_disabled()
    web = _row(page, "err-web")
    await expect(web.get_by_role("button", name="Restart err-web", exact=True)).to_be_enabled()
    detail_opener = page.locator('#container-list .open-container[data-name="err-done"]')
    await detail_opener.click()
    detail = page.locator('.detail[data-name="err-done"]')
    await expect(detail.get_by_role("button", name="Start", exact=True)).to_be_enabled()
    await expect(detail.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
    await expect(detail.get_by_role("button", name="Restart", exact=True)).to_be_disabled()
    await page.get_by_role("tab", name="Containers", exact=True).click()

    await context.clear_cookies()
    # A quick action: the refusal is the row's result, and the row keeps its buttons.
    await web.get_by_role("button", name="Stop err-web", exact=True).click()
    result = web.locator(".row-result[role=alert]")
    await expect(result).to_contain_text("stop failed: authentication required (unauthorized)")
    await expect(web.get_by_role("button", name="Stop err-web", exact=True)).to_be_enabled()
    assert te.docker("inspect", "-f", "{{.State.Status}}", "err-web") == "running"

    # A list loaded by htmx: the same error in the list's place, not the old rows.
    await page.locator("#list-refresh").click()
    failure = page.locator("#container-list .host-failure[role=alert]")
    await expect(failure).to_contain_text("Could not load the containers")
    await expect(failure.locator(".error-message")).to_have_text(
        "authentication required (unauthorized)"
    )
    await expect(page.locator("#container-list tbody tr")).to_have_count(0)
    # The browser and htmx log the refused requests themselves; nothing else may be logged.
    assert [e for e in watch.errors if "401" not in e] == []
    await context.close()
