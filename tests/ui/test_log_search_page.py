"""The log search page in a real browser: a viewer types a marker, presses Enter, and the
matching lines of containers on a docker host and an ssh host stream into the table;
a bad regular expression is shown at the field; Stop ends a running search."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from tests.testenv import TestEnv

from .conftest import (
    VIEWER_PASSWORD,
    LiveApp,
    add_docker_host,
    add_ssh_host,
    login,
    new_page,
    screenshot,
)


@pytest.fixture
def testenv_docker(testenv: TestEnv) -> Iterator[TestEnv]:
    """live_app's environment without its "remove every container" at the end: the
    dockerd is shared, so this module removes its own containers only."""
    yield testenv


@pytest.fixture
def logged(testenv: TestEnv) -> Iterator[dict]:
    tag = secrets.token_hex(4)
    marker, names = f"needle-{tag}", [f"lsp-{tag}-{i}" for i in range(2)]
    try:
        # Made again when another test run removed them meanwhile (the dockerd is
        # shared, and some fixtures remove every container).
        for _ in range(5):
            for i, name in enumerate(names):
                if testenv.docker("wait", name, check=False) == "0":
                    continue
                testenv.docker("rm", "-f", name, check=False)
                cmd = f"echo before; echo '<b>{marker}</b> from {i}'; echo after"
                testenv.run_container(name, ["sh", "-c", cmd])
            if all(testenv.docker("wait", n, check=False) == "0" for n in names):
                break
        yield {"marker": marker, "names": names}
    finally:
        testenv.docker("rm", "-f", *names, check=False)


async def test_search_streams_results_into_the_table(
    browser, live_app: LiveApp, testenv: TestEnv, logged: dict
) -> None:  # type: ignore[no-untyped-def]
    docker_id = await add_docker_host(live_app, testenv.docker_unix_url, name="engine-a")
    ssh_id = await add_ssh_host(live_app, testenv, name="vm-b")
    # A new host's containers reach the live state with its first listing.
    for _ in range(75):
        status, body = await live_app.api("GET", "/api/containers?all=1")
        assert status == 200, body
        seen = {(c["host_id"], c["name"]) for c in body["containers"]}
        if all((h, n) in seen for h in (docker_id, ssh_id) for n in logged["names"]):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"not listed: {sorted(seen)}")
    context, page, watch = await new_page(browser, live_app)
    await login(page, "victor", VIEWER_PASSWORD)
    await page.get_by_role("link", name="Log search").click()
    await page.wait_for_url("**/logs/search")
    # Both hosts are offered in the picker.
    picker = page.get_by_label("Hosts")
    await expect(picker.locator(f'option[value="{docker_id}"]')).to_have_count(1)
    await expect(picker.locator(f'option[value="{ssh_id}"]')).to_have_count(1)
    await picker.select_option([docker_id, ssh_id])
    await page.get_by_label("Container names (comma separated, exact)").fill(
        ", ".join(logged["names"])
    )
    box = page.get_by_label("Text to find")
    await box.fill(logged["marker"])
    await box.press("Enter")

    rows = page.locator("#search-results tbody tr")
    await expect(page.locator("#search-status")).to_contain_text("Done")
    status_text = await page.locator("#search-status").text_content()
    assert await rows.count() == 4, status_text  # 2 containers x 2 hosts
    await expect(page.locator("#search-status")).to_contain_text("Done: 4 matches")
    texts = sorted(await rows.locator("td:nth-child(5)").all_text_contents())
    # Inserted as text: the markup in the log line is shown, never parsed.
    assert texts == sorted(f"<b>{logged['marker']}</b> from {i}" for i in (0, 0, 1, 1))
    assert await page.locator("#search-results b").count() == 0
    hosts = set(await rows.locator("td:nth-child(1)").all_text_contents())
    assert hosts == {"engine-a", "vm-b"}
    await screenshot(page, "log-search")

    # A bad regular expression: the server's message at the field.
    await page.get_by_label("Regular expression").check()
    await box.fill("needle(")
    await box.press("Enter")
    await expect(page.locator("#search-q-error")).to_contain_text("position")
    await expect(box).to_have_attribute("aria-invalid", "true")
    assert watch.errors == [] or all("400" in e for e in watch.errors), watch.errors
    await context.close()
