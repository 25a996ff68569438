"""The pages work under their own content security policy in a real browser: signing
in, the Containers page, a container's details, live logs and a terminal raise no
violation, while an inline script is refused and the pages cannot be framed."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from playwright.async_api import expect

from .conftest import add_docker_host, new_page

# Installed before any page script runs (through the DevTools protocol, which the
# policy does not govern) and kept across navigations.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolation([e.violatedDirective, e.blockedURI, e.sourceFile, e.lineNumber,
                       e.sample].join(" "));
});
"""


async def _watch_violations(page: Any) -> list[str]:
    violations: list[str] = []

    def record(text: str) -> None:
        violations.append(text)

    await page.expose_function("cspViolation", record)
    await page.add_init_script(REPORT_VIOLATIONS)
    return violations


async def test_pages_run_under_their_policy(browser, live_app, testenv_docker) -> None:  # type: ignore[no-untyped-def]
    te = testenv_docker
    te.run_container(
        "csp-web",
        ["sh", "-c", "echo csp booted; while true; do sleep 1; done"],
        extra_args=["--stop-timeout", "1"],
    )
    host_id = await add_docker_host(live_app, te.docker_unix_url)
    context, page, watch = await new_page(browser, live_app)
    violations = await _watch_violations(page)

    response = await page.goto("/login")
    assert response is not None
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill("alice-password-1")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/containers**")

    # Everything the page does with scripts: htmx swaps, tabs, logs, xterm.js. The only
    # host is chosen on its own; the click waits for that list so it replaces none.
    summary = page.locator(f'#container-list .host-summary[data-host="{host_id}"]')
    await expect(summary).to_be_attached()
    await page.locator(f'.host-link[data-host="{host_id}"]').click()
    await expect(summary).to_be_attached()
    opener = page.locator('#container-list .open-container[data-name="csp-web"]')
    await opener.click()
    detail = page.locator(f'.detail[data-name="csp-web"][data-host="{host_id}"]')
    await expect(detail).to_be_visible()
    for tab in ("Env", "Stats", "Labels", "Overview"):
        await detail.get_by_role("tab", name=tab).click()
    await detail.get_by_role("tab", name="Logs").click()
    output = detail.locator(".log-output")
    await expect(output).to_contain_text("csp booted")
    await detail.get_by_role("button", name="Follow", exact=True).click()
    await expect(detail.locator(".log-status")).to_contain_text("Following live")
    te.docker("exec", "csp-web", "sh", "-c", "echo followed-under-csp > /proc/1/fd/1")
    await expect(output).to_contain_text("followed-under-csp")
    await detail.get_by_role("button", name="Stop following").click()

    await detail.get_by_role("tab", name="Terminal").click()
    await detail.get_by_role("button", name="Connect", exact=True).click()
    await expect(detail.locator(".term-status")).to_contain_text("Connected")
    await detail.locator(".term-host").click()
    await page.keyboard.type("echo csp-$((6*7))\n")
    rows = detail.locator(".xterm-rows > div")
    await expect(rows.filter(has_text=re.compile(r"^\s*csp-42\s*$"))).to_have_count(1)
    await detail.get_by_role("button", name="Disconnect", exact=True).click()
    await page.reload()
    await expect(page.locator('.detail[data-name="csp-web"]')).to_be_visible()

    assert violations == []
    assert watch.errors == []

    # The policy is enforced and the listener hears it: an injected inline script
    # does not run and is reported.
    ran = await page.evaluate(
        """() => {
             const s = document.createElement("script");
             s.textContent = "window.injectedRan = true";
             document.body.appendChild(s);
             return window.injectedRan === true;
           }"""
    )
    assert ran is False
    for _ in range(50):
        if violations:
            break
        await asyncio.sleep(0.1)
    assert violations and violations[0].startswith("script-src"), violations
    await context.close()


async def test_pages_cannot_be_framed(browser, live_app) -> None:  # type: ignore[no-untyped-def]
    context = await browser.new_context()
    page = await context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "frame-ancestors" in m.text else None)
    # A page of another origin (about:blank here) framing the login form.
    await page.set_content(f'<iframe id="f" src="{live_app.base_url}/login"></iframe>')
    frame = page.frame_locator("#f")
    for _ in range(100):
        if refused:
            break
        await asyncio.sleep(0.1)
    assert refused, "the browser did not refuse to frame the page"
    await expect(frame.get_by_label("Username")).to_have_count(0)
    await context.close()
