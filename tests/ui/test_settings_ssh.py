"""Settings > SSH targets in Chromium against the real sshd (issue 13, "done when"):
targets by key, password and certificate and through a chain of jump hosts picked from
the list, each scanned, confirmed and tested; a changed host key refused, shown old
beside new, re-confirmed; removal asks first."""

from __future__ import annotations

import re

from playwright.async_api import expect

from .conftest import SCREENSHOTS, VIEWER_PASSWORD, login, new_page

PAGE = "/settings/ssh"
# Refusals the page provokes on purpose (a changed key, a removal the API refuses)
# show up as failed fetches in the console; nothing else may.
EXPECTED = ("status of 409", "status of 400")


def _row(page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#targets-table tbody tr[data-name="{name}"]')


async def _start(page, name: str, endpoint, username: str) -> None:  # type: ignore[no-untyped-def]
    await page.get_by_role("button", name="Add target").click()
    await expect(page.get_by_role("heading", name="Add an SSH target")).to_be_visible()
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("Host", exact=True).fill(endpoint.host)
    await page.get_by_label("Port", exact=True).fill(str(endpoint.port))
    await page.get_by_label("Username", exact=True).fill(username)


async def _scan_and_pin(page, endpoint) -> None:  # type: ignore[no-untyped-def]
    await page.get_by_role("button", name="Scan host key").click()
    result = page.locator("#scan-result")
    await expect(result).to_contain_text(endpoint.host_key_fingerprint)
    await expect(result).to_contain_text("ssh-ed25519")
    # Shown, not trusted: nothing is pinned until the admin presses the button.
    await expect(page.locator("#pinned-keys")).to_contain_text("No host key pinned yet")
    await page.get_by_role("button", name="Pin this key").click()
    await expect(page.locator("#pinned-keys")).to_contain_text(endpoint.host_key_fingerprint)


async def _save_and_test(page, name: str, hops: int = 0) -> None:  # type: ignore[no-untyped-def]
    await page.get_by_role("button", name="Save target").click()
    row = _row(page, name)
    await expect(row).to_be_visible()
    await expect(page.locator("#target-editor")).to_be_hidden()
    await row.get_by_role("button", name="Test").click()
    status = row.locator(".row-status")
    await expect(status).to_contain_text(re.compile(r"Connected.*SSH-2\.0-OpenSSH"))
    if hops:
        await expect(status).to_contain_text(f"through {hops} jump host")


async def test_ssh_targets_page(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    env = testenv_docker
    m = env.ssh
    context, page, watch = await new_page(browser, live_app)
    await login(page, "alice", "alice-password-1")
    await page.goto(PAGE)
    await expect(page.get_by_role("heading", name="SSH targets", exact=True)).to_be_visible()
    await expect(page.locator("#targets-empty")).to_be_visible()

    # By key (an encrypted one, loaded from a file, with its passphrase). Saving before a
    # key is pinned is refused beside the host key.
    await _start(page, "by-key", env.ssh_target, m.username)
    await page.get_by_label("Private key file").set_input_files(m.encrypted_private_key_path)
    await expect(page.get_by_label("Private key", exact=True)).to_have_value(
        m.encrypted_private_key
    )
    await page.get_by_label("Passphrase of the private key").fill(m.passphrase)
    await page.get_by_role("button", name="Save target").click()
    await expect(page.locator('[data-error-for="host_keys"]')).to_contain_text(
        "No host key is pinned"
    )
    # A wrong passphrase: the API's error lands beside the passphrase field.
    await _scan_and_pin(page, env.ssh_target)
    await page.get_by_label("Passphrase of the private key").fill("not-the-passphrase")
    await page.get_by_role("button", name="Save target").click()
    await expect(page.locator('[data-error-for="passphrase"]')).to_contain_text("passphrase")
    await page.get_by_label("Passphrase of the private key").fill(m.passphrase)
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#test-result")).to_contain_text("SSH-2.0-OpenSSH")
    await _save_and_test(page, "by-key")
    await expect(_row(page, "by-key")).to_contain_text(env.ssh_target.host_key_fingerprint)

    # By password.
    await _start(page, "by-password", env.ssh_target, m.username)
    await page.get_by_label("By password").check()
    await expect(page.get_by_label("Private key", exact=True)).to_be_hidden()
    await page.get_by_label("Password", exact=True).fill(m.password)
    await _scan_and_pin(page, env.ssh_target)
    await _save_and_test(page, "by-password")

    # By OpenSSH certificate (the certificate uploaded from its file).
    await _start(page, "by-cert", env.ssh_target, m.username)
    await page.get_by_label("By OpenSSH certificate").check()
    await page.get_by_label("Private key", exact=True).fill(m.cert_private_key)
    await page.get_by_label("Certificate file").set_input_files(m.certificate_path)
    await expect(page.get_by_label("Certificate", exact=True)).to_have_value(
        re.compile(re.escape(m.certificate.strip()))
    )
    await _scan_and_pin(page, env.ssh_target)
    await _save_and_test(page, "by-cert")

    # Two jump hosts, then a target through both, the chain picked from the list and put
    # in order with "Move up".
    for endpoint in (env.ssh_jump1, env.ssh_jump2):
        await _start(page, endpoint.name, endpoint, m.username)
        await page.get_by_label("Private key", exact=True).fill(m.private_key)
        await _scan_and_pin(page, endpoint)
        await _save_and_test(page, endpoint.name)
    await _start(page, "via-jumps", env.ssh_target, m.username)
    await page.get_by_label("Private key", exact=True).fill(m.private_key)
    pick = page.get_by_label("Jump host to add")
    for endpoint in (env.ssh_jump2, env.ssh_jump1):
        await pick.select_option(
            label=f"{endpoint.name} ({m.username}@{endpoint.host}:{endpoint.port})"
        )
        await page.get_by_role("button", name="Add jump host").click()
    chain = page.locator("#jump-list li")
    await expect(chain).to_have_count(2)
    await expect(chain.nth(0)).to_contain_text(env.ssh_jump2.name)
    await chain.nth(1).get_by_role("button", name="Move up").click()
    await expect(chain.nth(0)).to_contain_text(env.ssh_jump1.name)
    await expect(chain.nth(1)).to_contain_text(env.ssh_jump2.name)
    await _scan_and_pin(page, env.ssh_target)  # scanned through both pinned hops
    await _save_and_test(page, "via-jumps", hops=2)
    await expect(_row(page, "via-jumps")).to_contain_text(
        f"{env.ssh_jump1.name} → {env.ssh_jump2.name}"
    )

    # Credentials never come back: the API answers and the page hold none.
    status, targets = await live_app.api("GET", "/api/ssh/targets")
    assert status == 200
    html = await page.content()
    for secret in (m.password, m.passphrase, m.private_key.splitlines()[1]):
        assert secret not in str(targets) and secret not in html

    # A changed key (another server's pinned, via the API): refused with both
    # fingerprints; a rescan shows old beside new; only an explicit confirmation
    # replaces it.
    by_key = next(t for t in targets if t["name"] == "by-key")
    status, _ = await live_app.api(
        "PATCH", f"/api/ssh/targets/{by_key['id']}", json={"host_keys": [env.ssh_jump1.host_key]}
    )
    assert status == 200
    await page.reload()
    row = _row(page, "by-key")
    await row.get_by_role("button", name="Test").click()
    refusal = row.locator(".row-status")
    await expect(refusal).to_contain_text("host key has changed")
    await expect(refusal).to_contain_text(env.ssh_jump1.host_key_fingerprint)
    await expect(refusal).to_contain_text(env.ssh_target.host_key_fingerprint)
    await row.get_by_role("button", name="Edit").click()
    await expect(page.get_by_role("heading", name="Edit by-key")).to_be_visible()
    await expect(page.get_by_text("set — leave empty to keep").first).to_be_visible()
    await expect(page.get_by_label("Private key", exact=True)).to_have_value("")
    await page.get_by_role("button", name="Scan host key").click()
    await expect(page.locator(".fingerprints .old")).to_contain_text(
        env.ssh_jump1.host_key_fingerprint
    )
    await expect(page.locator(".fingerprints .new")).to_contain_text(
        env.ssh_target.host_key_fingerprint
    )
    await expect(page.get_by_role("button", name="Pin this key")).to_have_count(0)
    # Still the old pin in the form: the form's test refuses beside the host key.
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#test-result")).to_contain_text("host_key_changed")
    beside = page.locator('[data-error-for="host_keys"]')
    await expect(beside).to_contain_text("host key has changed")
    await expect(beside).to_contain_text(env.ssh_target.host_key_fingerprint)
    # The whole page: the targets table above the form with old and new side by side.
    await page.screenshot(path=str(SCREENSHOTS / "settings-ssh.png"), full_page=True)
    replace = page.get_by_role("button", name="Replace the pinned key…")
    await replace.click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text(env.ssh_target.host_key_fingerprint)
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#pinned-keys")).to_contain_text(env.ssh_jump1.host_key_fingerprint)
    await replace.click()
    await page.get_by_role("dialog").get_by_role("button", name="Replace the pinned key").click()
    await expect(page.locator("#pinned-keys")).to_contain_text(env.ssh_target.host_key_fingerprint)
    await expect(page.locator("#pinned-keys")).not_to_contain_text(
        env.ssh_jump1.host_key_fingerprint
    )
    # Tried before saving: the stored key (its field left empty) logs in with the new pin.
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#test-result")).to_contain_text("SSH-2.0-OpenSSH")
    await _save_and_test(page, "by-key")

    # Removal: a hop in use is explained, not removed; another asks first.
    await _row(page, env.ssh_jump1.name).get_by_role("button", name="Remove").click()
    await expect(_row(page, env.ssh_jump1.name).locator(".row-status")).to_contain_text(
        "is a jump host of via-jumps"
    )
    row = _row(page, "by-password")
    await row.get_by_role("button", name="Remove").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    await expect(row).to_be_visible()
    await row.get_by_role("button", name="Remove").click()
    await page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    await expect(row).to_have_count(0)
    status, targets = await live_app.api("GET", "/api/ssh/targets")
    assert "by-password" not in {t["name"] for t in targets}

    assert [e for e in watch.errors if not any(x in e for x in EXPECTED)] == []
    await context.close()


async def test_viewer_gets_no_ssh_settings(browser, live_app) -> None:  # type: ignore[no-untyped-def]
    context, page, _ = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    response = await page.goto(PAGE)
    assert response is not None and response.status == 403
    await context.close()
