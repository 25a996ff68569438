"""Settings > Users and Account in Chromium (issue 13, "done when"): an admin adds a user
who signs in elsewhere and is signed out by being disabled; the last active admin cannot
go; a token made on Account works from a script until it is revoked on the page; viewers
have no Settings."""

from __future__ import annotations

import re

from playwright.async_api import expect

from .conftest import VIEWER_PASSWORD, login, new_page, screenshot

# Refusals the pages provoke on purpose (the last admin, a wrong current password) show
# up as failed fetches in the console; nothing else may.
EXPECTED = ("status of 409", "status of 400")


def _row(page, username: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#users-table tbody tr[data-username="{username}"]')


async def _confirm(page, button: str) -> None:  # type: ignore[no-untyped-def]
    dialog = page.get_by_role("dialog", name="Confirm")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name=button, exact=True).click()
    await expect(dialog).to_have_count(0)


async def _sign_in_form(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


def _unexpected(errors: list[str]) -> list[str]:
    return [e for e in errors if not any(x in e for x in EXPECTED)]


async def _me(live, token: str) -> int:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    async with live.http.get(live.base_url + "/api/auth/me", headers=headers) as resp:
        return resp.status


async def test_users_page_and_account(browser, live_app) -> None:  # type: ignore[no-untyped-def]
    # Tall pages: the screenshots show every section.
    _, admin, admin_watch = await new_page(browser, live_app, height=1420)
    await login(admin, "alice", "alice-password-1")
    await admin.goto("/settings/users")
    await expect(admin.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    await expect(_row(admin, "alice")).to_contain_text("(you)")
    await expect(_row(admin, "victor").get_by_label("Role of victor")).to_have_value("viewer")

    # Bad input lands beside its field; nothing is added.
    await admin.get_by_label("Username", exact=True).fill("dave")
    await admin.get_by_label("Password", exact=True).fill("short")
    await admin.get_by_role("button", name="Add user").click()
    await expect(admin.locator('[data-error-for="password"]')).to_contain_text("at least 8")
    await expect(_row(admin, "dave")).to_have_count(0)

    # Add carol, a viewer, on the page.
    await admin.get_by_label("Username", exact=True).fill("carol")
    await admin.get_by_label("Role", exact=True).select_option("viewer")
    await admin.get_by_label("Password", exact=True).fill("carol-password-1")
    await admin.get_by_role("button", name="Add user").click()
    carol_row = _row(admin, "carol")
    await expect(carol_row).to_be_visible()
    await expect(carol_row).to_contain_text("active")
    await expect(carol_row).to_contain_text("never")  # no sign-in yet

    # Carol signs in in another browser context, and reaches her account.
    _, carol, carol_watch = await new_page(browser, live_app, height=1000)
    await login(carol, "carol", "carol-password-1")
    await carol.goto("/account")
    await expect(carol.get_by_role("heading", name="Account", exact=True)).to_be_visible()

    # Disabled on the page: her next page load is back at the sign-in form, and signing
    # in again fails like a wrong password.
    await carol_row.get_by_role("button", name="Disable").click()
    await _confirm(admin, "Disable")
    await expect(carol_row).to_contain_text("disabled")
    await carol.reload()
    await expect(carol).to_have_url(re.compile(r"/login\?next="))
    await _sign_in_form(carol, "carol", "carol-password-1")
    await expect(carol.locator(".alert-error")).to_have_text("invalid username or password")
    # Enabled again, she signs in.
    await carol_row.get_by_role("button", name="Enable").click()
    await expect(carol_row).to_contain_text("active")
    await _sign_in_form(carol, "carol", "carol-password-1")
    await expect(carol).to_have_url(re.compile(r"/account"))

    # Her own password: a mismatch is caught beside the field before anything is sent,
    # a wrong current password beside that one.
    await carol.get_by_label("Current password").fill("carol-password-1")
    await carol.get_by_label("New password", exact=True).fill("carol-password-2")
    await carol.get_by_label("Confirm new password").fill("carol-password-3")
    await carol.get_by_role("button", name="Change password").click()
    await expect(carol.locator('[data-error-for="confirm"]')).to_have_text(
        "The two new passwords differ."
    )
    await carol.get_by_label("Current password").fill("not-my-password")
    await carol.get_by_label("Confirm new password").fill("carol-password-2")
    await carol.get_by_role("button", name="Change password").click()
    await expect(carol.locator('[data-error-for="current"]')).to_contain_text("not right")
    await carol.get_by_label("Current password").fill("carol-password-1")
    await carol.get_by_role("button", name="Change password").click()
    await expect(carol.locator("#password-ok")).to_contain_text("Password changed")

    # A token made on Account: shown once, works from a script, listed with its use.
    await carol.get_by_label("Name", exact=True).fill("ci-script")
    await carol.get_by_label("Expires after (days)").fill("30")
    await carol.get_by_role("button", name="Create token").click()
    once = carol.get_by_role("dialog")
    await expect(once).to_contain_text("Shown once")
    token = (await once.locator(".secret-value").text_content() or "").strip()
    assert token.startswith("an_")
    await once.get_by_role("button", name="Done").click()
    await expect(carol.locator(".secret-value")).to_have_count(0)
    assert await _me(live_app, token) == 200
    await carol.reload()
    token_row = carol.locator("#tokens-table tbody tr", has_text="ci-script")
    await expect(token_row).to_be_visible()
    cells = token_row.locator("td")
    await expect(cells.nth(2)).not_to_have_text("never")  # last used
    await expect(cells.nth(3)).not_to_have_text("never")  # expires in 30 days
    await carol.evaluate("window.scrollTo(0, 0)")
    await screenshot(carol, "account")

    # The admin sees it among every user's tokens.
    await admin.reload()
    all_tokens = admin.locator("#all-tokens-table tbody tr", has_text="ci-script")
    await expect(all_tokens).to_contain_text("carol")
    await screenshot(admin, "settings-users")

    # Revoked on Account (after a confirmation): the script gets 401.
    await token_row.get_by_role("button", name="Revoke").click()
    await _confirm(carol, "Revoke")
    await expect(token_row).to_have_count(0)
    assert await _me(live_app, token) == 401

    # An admin resets victor's password in a small dialog; the new one signs in.
    await _row(admin, "victor").get_by_role("button", name="Reset password").click()
    reset = admin.get_by_role("dialog", name="Reset the password of victor")
    await reset.get_by_label("New password").fill("short")
    await reset.get_by_role("button", name="Set password").click()
    await expect(reset.locator('[data-error-for="password"]')).to_contain_text("at least 8")
    await reset.get_by_label("New password").fill("victor-password-2")
    await reset.get_by_role("button", name="Set password").click()
    await expect(reset).to_have_count(0)
    await expect(admin.locator("#users-status")).to_contain_text("password of victor")
    body = {"username": "victor", "password": "victor-password-2"}
    async with live_app.http.post(live_app.base_url + "/api/auth/login", json=body) as resp:
        assert resp.status == 200

    # The last active admin cannot be deleted: "admin" is disabled first, then deleting
    # alice is refused with the reason shown.
    await _row(admin, "admin").get_by_role("button", name="Disable").click()
    await _confirm(admin, "Disable")
    await expect(_row(admin, "admin")).to_contain_text("disabled")
    await _row(admin, "alice").get_by_role("button", name="Delete").click()
    await _confirm(admin, "Delete")
    await expect(admin.locator("#users-error")).to_contain_text("no active admin")
    await expect(admin.locator("#users-error")).to_have_attribute("role", "alert")
    await expect(_row(admin, "alice")).to_be_visible()
    # Demoting her is refused the same way, and the select shows the role she kept.
    await _row(admin, "alice").get_by_label("Role of alice").select_option("viewer")
    await expect(admin.locator("#users-error")).to_contain_text("no active admin")
    await expect(_row(admin, "alice").get_by_label("Role of alice")).to_have_value("admin")

    # Deleting carol works and ends her session at once.
    await carol_row.get_by_role("button", name="Delete").click()
    await _confirm(admin, "Delete")
    await expect(carol_row).to_have_count(0)
    await carol.reload()
    await expect(carol).to_have_url(re.compile(r"/login\?next="))

    assert _unexpected(admin_watch.errors) == []
    # Carol's page also saw her refused sign-in (the form answers 401).
    assert [e for e in _unexpected(carol_watch.errors) if "status of 401" not in e] == []


async def test_viewer_has_no_settings(browser, live_app) -> None:  # type: ignore[no-untyped-def]
    _, page, watch = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Account")).to_be_visible()
    await expect(nav.get_by_role("link", name="Settings")).to_have_count(0)
    assert watch.errors == []
    response = await page.goto("/settings/users")
    assert response is not None and response.status == 403
    await page.goto("/account")
    await expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    await expect(page.locator("#tokens-table")).to_contain_text("No API tokens yet.")
    # The 403 is a JSON answer, for which the browser also asks /favicon.ico (404).
    assert [e for e in watch.errors if not re.search("status of 40[34]", e)] == []
