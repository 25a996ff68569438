"""Settings > Alerts in Chromium (issue 15, "done when"): an admin adds a webhook channel
(a bad URL is refused beside its field), sends a test notice that the local receiver
gets signed, adds a rule, sees it fire on a real container in the alert history,
snoozes it and removes the channel after confirming; viewers have no Settings and get
403 from the page."""

from __future__ import annotations

import re
import secrets

import pytest
from archnest import Settings
from playwright.async_api import expect

from tests.alerts.conftest import SECRET, Receiver, receiver  # noqa: F401 (a fixture)

from .conftest import VIEWER_PASSWORD, add_docker_host, login, new_page, screenshot

EXIT_CODE_3 = ["sh", "-c", "sleep 1; exit 3"]


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.alerts_interval = 1.0
    return archnest_settings


async def _confirm(page, button: str) -> None:  # type: ignore[no-untyped-def]
    dialog = page.get_by_role("dialog", name="Confirm")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name=button, exact=True).click()
    await expect(dialog).to_have_count(0)


async def test_alerts_page(browser, live_app, testenv_docker, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    host_id = await add_docker_host(live_app, testenv_docker.docker_unix_url, "alerts-engine")
    _, page, watch = await new_page(browser, live_app, height=2200)
    await login(page, "alice", "alice-password-1")
    await page.goto("/settings/alerts")
    await expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
    await expect(page.locator("#channels-table")).to_contain_text("No channels.")

    channel_form = page.locator("#channel-form")
    await channel_form.get_by_label("Name").fill("ops hook")
    await channel_form.get_by_label("Kind").select_option("webhook")
    await channel_form.get_by_label("URL").fill("ftp://127.0.0.1/nope")
    await channel_form.get_by_label("Signing secret").fill(SECRET)
    await page.get_by_role("button", name="Add channel").click()
    await expect(channel_form.locator('[data-error-for="url"]')).to_contain_text("http")
    await expect(channel_form.get_by_label("URL")).to_have_attribute("aria-invalid", "true")

    await channel_form.get_by_label("URL").fill(receiver.url())
    await page.get_by_role("button", name="Add channel").click()
    row = page.locator("#channels-table tbody tr", has_text="ops hook")
    await expect(row).to_contain_text(receiver.url())
    await expect(row).to_contain_text("set")  # the secret: set, never shown

    await row.get_by_role("button", name="Send test").click()
    await expect(page.locator("#channels-status")).to_contain_text("delivered")
    [got] = receiver.got
    assert got.signed_with(SECRET) and got.json()["state"] == "test"

    rule_form = page.locator("#rule-form")
    await rule_form.get_by_label("Name").fill("exit codes")
    await rule_form.get_by_label("Kind").select_option("container_exited")
    await rule_form.get_by_label("Hosts").fill(host_id)
    await rule_form.get_by_label("ops hook (webhook)").check()
    await page.get_by_role("button", name="Add rule").click()
    rule_row = page.locator("#rules-table tbody tr", has_text="exit codes")
    await expect(rule_row).to_contain_text("container_exited")
    await expect(rule_row).to_contain_text("ops hook")
    await expect(rule_row).to_contain_text(f"hosts {host_id}")

    name = f"ui-exit-{secrets.token_hex(3)}"
    testenv_docker.run_container(name, EXIT_CODE_3)
    history = page.locator("#history-table tbody tr", has_text=name)
    await expect(history).to_contain_text("firing", timeout=30_000)
    await expect(history).to_contain_text("exited with code 3")
    await expect(history).to_contain_text("exit codes")
    await receiver.wait_for(lambda: receiver.notices("firing", name), 10)

    await rule_row.get_by_role("button", name="Snooze").click()
    dialog = page.get_by_role("dialog", name="Snooze the rule exit codes")
    await dialog.get_by_label("Minutes").fill("45")
    await dialog.get_by_role("button", name="Snooze").click()
    await expect(rule_row).to_contain_text("snoozed until")
    await expect(rule_row.get_by_role("button", name="Unsnooze")).to_be_visible()
    await screenshot(page, "settings-alerts")

    # Edit the channel: the secret stays unless replaced or removed; the rule follows.
    await expect(channel_form.get_by_label("Remove the stored secret")).to_be_hidden()
    await row.get_by_role("button", name="Edit").click()
    await expect(page.get_by_role("heading", name="Edit channel: ops hook")).to_be_visible()
    await expect(channel_form.get_by_label("Remove the stored secret")).to_be_visible()
    await channel_form.get_by_label("Name").fill("ops pager")
    await page.get_by_role("button", name="Save channel").click()
    row = page.locator("#channels-table tbody tr", has_text="ops pager")
    await expect(row).to_contain_text("set")
    await expect(rule_row).to_contain_text("ops pager")
    await expect(page.get_by_role("heading", name="Add channel")).to_be_visible()

    await row.get_by_role("button", name="Remove").click()
    await _confirm(page, "Remove")
    await expect(page.locator("#channels-table")).to_contain_text("No channels.")
    await expect(rule_row).to_contain_text("none")  # the rule names no channel now
    # The bad URL's refusal (a 400) is the only failed request of the page.
    assert [e for e in watch.errors if "status of 400" not in e] == []


async def test_viewer_has_no_alert_settings(browser, live_app) -> None:  # type: ignore[no-untyped-def]
    _, page, watch = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Settings")).to_have_count(0)
    response = await page.goto("/settings/alerts")
    assert response is not None and response.status == 403
    assert [e for e in watch.errors if not re.search("status of 40[34]", e)] == []
