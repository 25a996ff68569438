"""Single sign-on in Chromium against a real OpenID provider (oidc-provider on node,
tests/oidc): alice (admin group) gets Settings, bob (viewer group) does not, eve (no
allowed group) is refused with the reason; with password sign-in turned off the form is
gone and the JSON sign-in refuses, while single sign-on still works."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from archnest import Settings, create_app
from archnest.keys import DB_KEY
from archnest.testing import ADMIN_PASSWORD
from archnest.users import create_token
from playwright.async_api import expect

from tests.oidc.provider import free_port, run_provider

from .conftest import LiveApp, new_page, screenshot


@pytest.fixture
async def sso_app(archnest_settings: Settings, request) -> AsyncIterator[LiveApp]:  # type: ignore[no-untyped-def]
    """The app on a fixed loopback port with the provider as its single sign-on."""
    archnest_settings.password_login = getattr(request, "param", True)
    app_port = free_port()
    redirect_uri = f"http://127.0.0.1:{app_port}/auth/oidc/callback"
    async with run_provider(free_port(), redirect_uri) as provider:
        for key, value in provider.env().items():
            setattr(archnest_settings, key, value)
        app = create_app(archnest_settings)
        server = TestServer(app, host="127.0.0.1", port=app_port)
        await server.start_server()
        try:
            token = await create_token(app[DB_KEY], "admin", "ui-tests")
            async with aiohttp.ClientSession() as http:
                yield LiveApp(server, http, token)
        finally:
            await server.close()


async def _sign_in_with_provider(page: Any, login: str) -> None:
    await page.goto("/containers")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_role("link", name="Sign in with Test IdP").click()
    # The provider's development sign-in form (any password), then its consent page.
    await page.locator('input[name="login"]').fill(login)
    await page.locator('input[name="password"]').fill("any-password")
    await page.get_by_role("button", name="Sign-in").click()
    await page.get_by_role("button", name="Continue").click()


async def test_groups_decide_who_gets_in_and_as_what(browser, sso_app) -> None:  # type: ignore[no-untyped-def]
    _, alice, alice_watch = await new_page(browser, sso_app)
    await _sign_in_with_provider(alice, "alice")
    await expect(alice).to_have_url(re.compile(r"/containers"))
    # The provider's own pages load a favicon and web fonts it cannot reach here; only
    # this app's pages must be free of errors.
    alice_watch.errors.clear()
    nav = alice.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Settings")).to_be_visible()
    await alice.goto("/settings/users")
    await expect(alice.locator('#users-table tbody tr[data-username="alice"]')).to_be_visible()
    # No password here to change: the account page says where it is kept.
    await alice.goto("/account")
    await expect(alice.locator("#external-password")).to_contain_text("sign-in provider")
    await expect(alice.get_by_label("Current password")).to_have_count(0)
    await expect(alice.get_by_role("heading", name="API tokens")).to_be_visible()
    assert alice_watch.errors == []

    _, bob, _ = await new_page(browser, sso_app)
    await _sign_in_with_provider(bob, "bob")
    await expect(bob).to_have_url(re.compile(r"/containers"))
    nav = bob.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Account")).to_be_visible()
    await expect(nav.get_by_role("link", name="Settings")).to_have_count(0)

    _, eve, _ = await new_page(browser, sso_app)
    await _sign_in_with_provider(eve, "eve")
    await expect(eve.locator(".alert-error")).to_have_text(
        "eve is signed in, but none of their groups may use ArchNest; ask an administrator for access"
    )
    await screenshot(eve, "sso-refused")
    await eve.goto("/containers")
    await expect(eve).to_have_url(re.compile(r"/login\?next="))


@pytest.mark.parametrize("sso_app", [False], indirect=True)
async def test_password_sign_in_off(browser, sso_app) -> None:  # type: ignore[no-untyped-def]
    _, page, _ = await new_page(browser, sso_app)
    await page.goto("/login")
    await expect(page.get_by_role("link", name="Sign in with Test IdP")).to_be_visible()
    await expect(page.get_by_label("Password")).to_have_count(0)
    await screenshot(page, "login-sso-only")
    body = {"username": "admin", "password": ADMIN_PASSWORD}
    async with sso_app.http.post(sso_app.base_url + "/api/auth/login", json=body) as resp:
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "password_login_disabled"
    # Scripts keep their API tokens.
    status, me = await sso_app.api("GET", "/api/auth/me")
    assert (status, me["username"]) == (200, "admin")
    await _sign_in_with_provider(page, "alice")
    await expect(page).to_have_url(re.compile(r"/containers"))
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Settings")).to_be_visible()
