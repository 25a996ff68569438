"""Settings > Docker engines in Chromium against the real dockerd (issue 13, "done when":
an engine by TCP and by mutual TLS with uploaded PEMs, end to end)."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import expect

from .conftest import VIEWER_PASSWORD, login, new_page, screenshot

PAGE = "/settings/engines"


def _row(page: Any, name: str) -> Any:
    return page.locator(f'#engine-table tbody tr[data-name="{name}"]')


def _pem_body(pem: str) -> str:
    """A piece of the base64 body of a PEM (the part that is secret in a key)."""
    return pem.split("-----")[2].strip().splitlines()[1]


async def _engine_version(te: Any) -> str:
    return te.docker("version", "-f", "{{.Server.Version}}")


async def test_engines_by_tcp_and_mutual_tls_from_the_page(
    browser, live_app, testenv_docker
) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    version = await _engine_version(te)
    key_secret = _pem_body(te.tls.key_pem)
    answers: list[str] = []

    context, page, watch = await new_page(browser, live_app)

    async def keep(response: Any) -> None:
        if "/api/" in response.url:
            try:
                answers.append(await response.text())
            except Exception:  # a redirect or an aborted request has no body
                pass

    page.on("response", keep)
    await login(page, "alice", "alice-password-1")
    await page.get_by_role("link", name="Settings").click()
    await (
        page.get_by_role("navigation", name="Settings")
        .get_by_role("link", name="Docker engines")
        .click()
    )
    await page.wait_for_url(f"**{PAGE}")
    await expect(page.get_by_role("heading", name="Docker engines", exact=True)).to_be_visible()
    await expect(page.locator("#engine-table tbody")).to_contain_text("No engines yet")
    form = page.locator("#engine-form")
    # Adding: nothing is stored yet, so there is nothing to remove.
    await expect(page.get_by_label("Remove the stored client key")).to_be_hidden()

    # A bad URL: the error is next to the URL field, for Save and for Test connection.
    await page.get_by_label("Name").fill("bad")
    await page.get_by_label("URL", exact=True).fill("http://127.0.0.1:2375")
    await page.get_by_role("button", name="Save").click()
    url_error = form.locator('[data-error-for="url"]')
    await expect(url_error).to_contain_text("url must start with unix://, tcp:// or https://")
    await expect(page.get_by_label("URL", exact=True)).to_have_attribute("aria-invalid", "true")
    await page.get_by_role("button", name="Test connection").click()
    await expect(url_error).to_contain_text("url must start with")
    # TLS material with tcp:// (the docker CLI's spelling of the TLS port) names the url too.
    await page.get_by_label("URL", exact=True).fill(te.docker_tls_tcp_url)
    await page.get_by_label("CA certificate (PEM)").fill(te.tls.ca_pem)
    await page.get_by_role("button", name="Test connection").click()
    await expect(url_error).to_contain_text("https://")
    status, engines = await live_app.api("GET", "/api/docker/hosts")
    assert status == 200 and engines == []  # nothing was stored
    await page.get_by_label("CA certificate (PEM)").fill("")

    # Turning verification off shows the warning; on again hides it.
    verify = page.get_by_label("Verify the engine's certificate")
    warning = page.locator("#verify-warning")
    await expect(verify).to_be_checked()
    await expect(warning).to_be_hidden()
    await verify.uncheck()
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("Verification is off")
    await verify.check()
    await expect(warning).to_be_hidden()

    # By TCP: Test connection shows the engine's version, Save lists it.
    await page.get_by_label("Name").fill("tcp-engine")
    await page.get_by_label("URL", exact=True).fill(te.docker_tcp_url)
    await page.get_by_role("button", name="Test connection").click()
    result = page.locator("#engine-test-result")
    await expect(result).to_contain_text(f"Connected: Docker Engine {version}")
    await expect(url_error).to_be_empty()
    await page.get_by_role("button", name="Save").click()
    await expect(_row(page, "tcp-engine")).to_be_visible()
    await expect(_row(page, "tcp-engine")).to_contain_text(te.docker_tcp_url)
    await expect(_row(page, "tcp-engine").locator(".engine-tls")).to_have_text("no certificates")

    # By mutual TLS with the PEMs uploaded as files.
    await page.get_by_label("Name").fill("tls-engine")
    await page.get_by_label("URL", exact=True).fill(te.docker_tls_url)
    await page.get_by_label("CA certificate file").set_input_files(te.tls.ca_path)
    await page.get_by_label("Client certificate file").set_input_files(te.tls.cert_path)
    await page.get_by_label("Client key file").set_input_files(te.tls.key_path)
    await expect(page.get_by_label("CA certificate (PEM)")).to_have_value(te.tls.ca_pem)
    await expect(page.get_by_label("Client certificate (PEM)")).to_have_value(te.tls.cert_pem)
    await expect(page.get_by_label("Client key (PEM)")).to_have_value(te.tls.key_pem)
    await page.get_by_role("button", name="Test connection").click()
    await expect(result).to_contain_text(f"Connected: Docker Engine {version}")
    await page.get_by_role("button", name="Save").click()
    tls_row = _row(page, "tls-engine")
    await expect(tls_row).to_be_visible()
    await expect(tls_row.locator(".engine-tls")).to_have_text("verify on CA, certificate, key set")
    # The form is empty again: the key left the page with the save.
    await expect(page.get_by_label("Client key (PEM)")).to_have_value("")
    await expect(page.locator("#engines-status")).to_contain_text("Added the engine “tls-engine”")

    # Each row's Test shows the versions.
    for name in ("tcp-engine", "tls-engine"):
        await _row(page, name).get_by_role("button", name="Test").click()
        await expect(_row(page, name).locator(".engine-status")).to_contain_text(
            f"Connected: Docker Engine {version}"
        )
    await screenshot(page, "settings-engines")

    # Both are hosts like any other: listed ok, and in the Containers page's selector.
    status, engines = await live_app.api("GET", "/api/docker/hosts")
    by_name = {e["name"]: e for e in engines}
    tls_id = f"docker:{by_name['tls-engine']['id']}"
    assert by_name["tls-engine"]["tls"] == {
        "verify": True,
        "has_ca": True,
        "has_cert": True,
        "has_key": True,
    }
    status, hosts = await live_app.api("GET", "/api/hosts")
    (host,) = [h for h in hosts if h["id"] == tls_id]
    assert host["status"] == "ok", host
    await page.get_by_role("link", name="Containers", exact=True).click()
    link = page.locator(f'.host-link[data-host="{tls_id}"]')
    await expect(link).to_contain_text("tls-engine")
    await expect(link.locator(".badge")).to_have_text("ok")
    await page.go_back()
    await page.wait_for_url(f"**{PAGE}")

    # Edit: the PEM boxes start empty ("set — leave empty to keep"); rename only.
    await _row(page, "tls-engine").get_by_role("button", name="Edit").click()
    await expect(page.locator("#engine-form-heading")).to_have_text("Edit engine “tls-engine”")
    await expect(page.get_by_label("Name")).to_have_value("tls-engine")
    for label in ("CA certificate (PEM)", "Client certificate (PEM)", "Client key (PEM)"):
        await expect(page.get_by_label(label)).to_have_value("")
    await expect(page.locator('[data-hint-for="key"]')).to_contain_text("Set — leave empty to keep")
    await expect(page.get_by_label("Remove the stored client key")).to_be_visible()
    # Test connection of the edit connects with the stored certificates.
    await page.get_by_role("button", name="Test connection").click()
    await expect(result).to_contain_text(f"Connected: Docker Engine {version}")
    await page.get_by_label("Name").fill("tls-renamed")
    await page.get_by_role("button", name="Save").click()
    await expect(_row(page, "tls-renamed")).to_be_visible()
    await expect(_row(page, "tls-engine")).to_have_count(0)
    await expect(_row(page, "tls-renamed").locator(".engine-tls")).to_have_text(
        "verify on CA, certificate, key set"
    )
    await _row(page, "tls-renamed").get_by_role("button", name="Test").click()
    await expect(_row(page, "tls-renamed").locator(".engine-status")).to_contain_text(
        f"Docker Engine {version}"
    )

    # The key never reaches the browser: not in the page, not in any API answer.
    html = await page.content()
    assert key_secret not in html and "PRIVATE KEY" not in html
    assert answers, "no API answer was seen"
    assert not [a for a in answers if key_secret in a or "PRIVATE KEY" in a]

    # Remove asks first; Cancel keeps the engine, Remove removes it.
    await _row(page, "tcp-engine").get_by_role("button", name="Remove").click()
    dialog = page.get_by_role("dialog", name="Confirm")
    await expect(dialog).to_contain_text("Remove the engine “tcp-engine”")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    await expect(_row(page, "tcp-engine")).to_be_visible()
    await _row(page, "tcp-engine").get_by_role("button", name="Remove").click()
    await (
        page.get_by_role("dialog", name="Confirm")
        .get_by_role("button", name="Remove", exact=True)
        .click()
    )
    await expect(_row(page, "tcp-engine")).to_have_count(0)
    await expect(page.locator("#engines-status")).to_contain_text("Removed the engine “tcp-engine”")
    status, engines = await live_app.api("GET", "/api/docker/hosts")
    assert [e["name"] for e in engines] == ["tls-renamed"]

    # The browser logs the refused Save and Tests (400) itself; nothing else may be logged.
    assert [e for e in watch.errors if "status of 400" not in e] == []
    await context.close()


async def test_a_failing_engine_says_why_and_viewers_do_not_get_the_page(
    browser, live_app, testenv_docker
) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    rogue = te.tls_rogue
    status, body = await live_app.api(
        "POST",
        "/api/docker/hosts",
        json={
            "name": "rogue-ca",
            "url": te.docker_tls_url,
            "tls": {"ca": rogue.ca_pem, "cert": te.tls.cert_pem, "key": te.tls.key_pem},
        },
    )
    assert status == 201, body

    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await page.goto(PAGE)
    row = _row(page, "rogue-ca")
    await row.get_by_role("button", name="Test").click()
    await expect(row.locator(".engine-status")).to_contain_text(
        re.compile(r"Connection failed: .*not signed by the configured CA")
    )
    # Fixed from the page: the right CA pasted, tested before saving, then saved.
    await row.get_by_role("button", name="Edit").click()
    await page.get_by_label("CA certificate (PEM)").fill(te.tls.ca_pem)
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#engine-test-result")).to_contain_text("Connected: Docker Engine")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#engines-status")).to_contain_text("Saved the engine “rogue-ca”")
    await row.get_by_role("button", name="Test").click()
    await expect(row.locator(".engine-status")).to_contain_text("Connected: Docker Engine")

    # Back to plain TCP: the stored certificates and key are removed with the url change.
    await row.get_by_role("button", name="Edit").click()
    await page.get_by_label("URL", exact=True).fill(te.docker_tcp_url)
    for what in ("CA certificate", "client certificate", "client key"):
        await page.get_by_label(f"Remove the stored {what}").check()
    await expect(page.get_by_label("Client key (PEM)")).to_be_disabled()
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#engine-test-result")).to_contain_text("Connected: Docker Engine")
    await page.get_by_role("button", name="Save").click()
    await expect(row.locator(".engine-tls")).to_have_text("no certificates")
    status, engine = await live_app.api("GET", f"/api/docker/hosts/{body['id']}")
    assert engine["url"] == te.docker_tcp_url
    assert engine["tls"] == {"verify": True, "has_ca": False, "has_cert": False, "has_key": False}
    assert [e for e in watch.errors if "status of 502" not in e] == []
    await context.close()

    # A viewer has no Settings link and is refused the page.
    context, page, watch = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    await expect(page.get_by_role("link", name="Settings")).to_have_count(0)
    response = await page.goto(PAGE)
    assert response is not None and response.status == 403
    await context.close()
