"""Settings > Agents in Chromium against the real agent, dockerd and sshd: a host is
enrolled on the page, installed with the command the page shows (run for real), reports,
is revoked on the page (its agent then gets 401); and the agent is installed over SSH
from the page into the test sshd's host and reports."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from archnest import Settings
from playwright.async_api import expect

from tests.agent.install_helpers import installed, remote_root, stop_agent, sudo_shim

from .conftest import VIEWER_PASSWORD, LiveApp, add_ssh_host, login, new_page, screenshot

INTERVAL = 2


@pytest.fixture
def ssh_root(testenv) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    with remote_root(testenv.ssh.username) as root:
        yield root


@pytest.fixture
def archnest_settings(archnest_settings: Settings, ssh_root: Path) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_SSH_INSTALL_ROOT"] = str(ssh_root)
    return archnest_settings


async def _wait_report(live: LiveApp, host: str, seconds: float) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status, hosts = await live.api("GET", "/api/agents/docker/hosts")
        assert status == 200, hosts
        found = {h["host"]: h for h in hosts}.get(host)
        if found is not None:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"{host} did not report"
        await asyncio.sleep(0.25)


async def _bash(command: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _row(page, host: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#enrollment-table tbody tr[data-host="{host}"]')


async def test_enroll_install_report_revoke_and_install_over_ssh(
    live_app: LiveApp, browser, testenv, tmp_path: Path, ssh_root: Path
) -> None:
    live = live_app
    context, page, watch = await new_page(browser, live)
    local_root = tmp_path / "host-root"
    try:
        await login(page, "alice", "alice-password-1")
        await page.goto("/settings/agents")
        await expect(page.get_by_role("link", name="Agents")).to_have_attribute(
            "aria-current", "page"
        )
        await expect(page.locator("#shared-token-mode")).to_contain_text("on")
        await expect(page.locator("#enrollment-table")).to_contain_text("No host is enrolled yet")

        # Enroll from the page: the token and the install command are shown once.
        enroll = page.locator("#enroll-form")
        await enroll.get_by_label("Host name").fill("bad name!")
        await enroll.get_by_role("button", name="Add agent host").click()
        await expect(enroll.locator('[data-error-for="host"]')).to_contain_text("host")
        await enroll.get_by_label("Host name").fill("page-host")
        await enroll.get_by_role("button", name="Add agent host").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("Shown once")
        blocks = dialog.locator(".secret-once")
        command_block = blocks.filter(has=page.get_by_text("Install command", exact=True))
        token_block = blocks.filter(has=page.get_by_text("Token", exact=True))
        command = await command_block.locator("code").inner_text()
        token = await token_block.locator("code").inner_text()
        assert token in command and "/agent/archnest-docker-agent.sh" in command
        await dialog.get_by_role("button", name="Done").click()
        await expect(page.get_by_role("dialog")).to_have_count(0)
        await expect(_row(page, "page-host")).to_contain_text("never reported")
        assert token not in await page.content()

        # Run the shown command for real: it downloads the script from the live server
        # and installs it (no systemd here: a detached loop under the prefix).
        env = {k: v for k, v in testenv.docker_cli_env().items() if not k.startswith("ARCHNEST_")}
        shim = sudo_shim(tmp_path / "bin")
        env.update(
            PATH=f"{shim}:{os.environ['PATH']}",
            ARCHNEST_INSTALL_ROOT=str(local_root),
            ARCHNEST_AGENT_INTERVAL=str(INTERVAL),
        )
        rc, out, err = await _bash(command, env)
        assert rc == 0, (out, err)
        assert "started the agent detached" in out
        reported = await _wait_report(live, "page-host", INTERVAL + 10)
        assert reported["last_report_at"]

        await page.reload()
        row = _row(page, "page-host")
        await expect(row).to_have_attribute("data-status", "ok")
        await expect(row.locator(".last-report")).not_to_have_text("never")

        # Revoke on the page; the agent's next run is refused with 401.
        await row.get_by_role("button", name="Revoke").click()
        confirm = page.get_by_role("dialog")
        await expect(confirm).to_contain_text("Revoke the agent token of page-host")
        await confirm.get_by_role("button", name="Revoke").click()
        await expect(_row(page, "page-host")).to_have_attribute("data-status", "revoked")
        await expect(_row(page, "page-host").get_by_role("button", name="Revoke")).to_have_count(0)
        files = installed(local_root)
        rc, out, err = await _bash(
            f"bash {files['bin']} --once --env-file {files['env']}",
            {k: v for k, v in env.items() if k != "ARCHNEST_AGENT_INTERVAL"},
        )
        assert rc == 3 and "(401)" in err, (rc, err)

        # Re-issue on the page: a new token and command, shown once; run it, it reports.
        before = (await _wait_report(live, "page-host", 1))["report_count"]
        await _row(page, "page-host").get_by_role("button", name="Re-issue token").click()
        confirm = page.get_by_role("dialog")
        await expect(confirm).to_contain_text("Issue a new token for page-host")
        await confirm.get_by_role("button", name="Re-issue token").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("New token for page-host")
        blocks = dialog.locator(".secret-once")
        command_block = blocks.filter(has=page.get_by_text("Install command", exact=True))
        new_command = await command_block.locator("code").inner_text()
        assert token not in new_command
        await dialog.get_by_role("button", name="Done").click()
        await expect(_row(page, "page-host")).not_to_have_attribute("data-status", "revoked")
        rc, out, err = await _bash(new_command, env)
        assert rc == 0, (out, err)
        for _ in range(80):
            if (await _wait_report(live, "page-host", 1))["report_count"] > before:
                break
            await asyncio.sleep(0.25)
        assert (await _wait_report(live, "page-host", 1))["report_count"] > before

        # Install over SSH from the page into the test sshd's host.
        await add_ssh_host(live, testenv, name="ssh-box")
        await page.reload()
        form = page.locator("#ssh-install-form")
        await expect(form.get_by_label("SSH target")).to_contain_text("ssh-box")
        await form.get_by_label("Host name").fill("ssh-agent-host")
        await form.get_by_label("DOCKER_HOST").fill("tcp://h:1; reboot")
        await form.get_by_role("button", name="Install agent").click()
        await expect(form.locator('[data-error-for="docker_host"]')).not_to_be_empty()
        await form.get_by_label("DOCKER_HOST").fill(testenv.docker_unix_url)
        await form.get_by_label("Report interval (seconds)").fill(str(INTERVAL))
        await form.get_by_role("button", name="Install agent").click()
        await expect(page.locator("#ssh-install-result")).to_contain_text(
            "Installed on ssh-agent-host", timeout=60_000
        )
        await _wait_report(live, "ssh-agent-host", INTERVAL + 10)
        status, all_hosts = await live.api("GET", "/api/hosts")
        assert status == 200
        assert "agent:ssh-agent-host" in {h["id"] for h in all_hosts}
        await page.reload()
        await expect(_row(page, "ssh-agent-host")).to_have_attribute("data-status", "ok")
        await page.evaluate("window.scrollTo(0, 0)")
        await screenshot(page, "settings-agents")
        # Only the two refused bodies above (the browser logs every 4xx answer).
        refused = [e for e in watch.errors if "status of 400" in e]
        assert len(refused) == 2 and len(watch.errors) == 2, watch.errors

        # A viewer has no Settings > Agents.
        await context.clear_cookies()
        await login(page, "victor", VIEWER_PASSWORD)
        response = await page.goto("/settings/agents")
        assert response is not None and response.status == 403
    finally:
        stop_agent(local_root)
        stop_agent(ssh_root)
        await context.close()
