"""The app as a user installs it: a clean clone (committed files only) pip-installed into
a fresh virtualenv with plain ``pip install <clone>`` (no -e, no npm), served by that
venv's ``archnest serve``, and the Containers page driven in Chromium.

pip builds the wheel in its isolated build environment and fetches the dependencies
from the machine's configured index; its cache makes repeated runs fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from archnest.web import VENDOR_ASSETS
from playwright.async_api import expect

from tests.docker_tcp.conftest import engine_body
from tests.testenv import TestEnv
from tests.testenv.procs import free_port
from tests.testenv.serve import serve_installed

from .conftest import PageWatch, login

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "wheel-admin-password-1"
COMMITTED_VENDOR = ROOT / "core" / "static" / "vendor"
AGENT_DIR = ROOT / "plugins" / "docker_agent" / "files"
AGENT_FILES = ("archnest-docker-agent.sh", "archnest-docker-agent.service")


@dataclass
class Installed:
    root: Path  # the venv
    clone: Path
    package: Path  # the installed archnest package directory
    env: dict[str, str]

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def run(
        self, *argv: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.bin(argv[0]), *argv[1:]],
            env={**self.env, **(env or {})},
            cwd=self.root.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @contextmanager
    def serve(self, log: Path, env: dict[str, str]) -> Iterator[str]:
        with serve_installed(
            self.bin("archnest"), {**self.env, **env}, self.root.parent, log, timeout=60
        ) as base:
            yield base


def _checked(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ARCHNEST_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    data = tmp / "data"
    env.update(
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        ARCHNEST_DATA_DIR=str(data),
        ARCHNEST_ADMIN_PASSWORD=ADMIN_PASSWORD,
        ARCHNEST_ADD_LOCAL_DOCKER="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    inst = Installed(venv, clone, Path(), env)
    _checked(inst.run("pip", "install", "-q", str(clone), timeout=900))
    where = _checked(
        inst.run("python", "-c", "import archnest, os; print(os.path.dirname(archnest.__file__))")
    ).strip()
    inst.package = Path(where)
    assert inst.package.is_relative_to(venv), f"archnest imported from {where}, not the venv"
    return inst


@pytest.fixture
def database_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """SQLite in the data dir, or on the PostgreSQL pass a fresh database of the testenv."""
    if os.environ.get("ARCHNEST_TEST_DB") == "postgres":
        return {"ARCHNEST_DATABASE_URL": request.getfixturevalue("testenv_pg_url")}
    return {}


def test_the_wheel_carries_the_vendored_assets(installed: Installed, tmp_path: Path) -> None:
    build = ("pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(installed.clone))
    _checked(installed.run(*build, timeout=600))
    (wheel,) = tmp_path.glob("archnest_containers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    committed = {p.name for p in COMMITTED_VENDOR.iterdir()}
    assert {f"archnest/static/vendor/{n}" for n in committed} <= names
    # The installed copy too, byte for byte.
    for name in committed:
        assert (installed.package / "static" / "vendor" / name).read_bytes() == (
            COMMITTED_VENDOR / name
        ).read_bytes(), name
    # The agent files the server hands out (GET /agent/...) are package data too.
    assert {f"archnest_docker_agent/files/{n}" for n in AGENT_FILES} <= names


async def test_containers_page_from_a_clean_clone(
    installed: Installed,
    browser: Any,
    testenv_docker: TestEnv,
    tmp_path: Path,
    database_env: dict[str, str],
) -> None:
    te = testenv_docker
    db = database_env
    te.run_container("wheel-web", ["sleep", "3600"], extra_args=["--stop-timeout", "1"])
    with installed.serve(tmp_path / "serve.log", db) as base:
        # The admin exists once serve has started (ARCHNEST_ADMIN_PASSWORD).
        token = _checked(installed.run("archnest", "token", "create", "admin", env=db)).strip()
        host_id = _add_engine(base, token, engine_body(te, "unix", "wheel-engine"))
        # The installed server hands out the agent it carries, byte for byte.
        for name in AGENT_FILES:
            with urllib.request.urlopen(f"{base}/agent/{name}", timeout=10) as resp:
                assert resp.read() == (AGENT_DIR / name).read_bytes(), name

        context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 860})
        try:
            page = await context.new_page()
            page.set_default_timeout(20_000)
            watch = PageWatch()
            watch.attach(page)
            static: list[tuple[int, str]] = []
            page.on(
                "response",
                lambda r: "/static/" in r.url and static.append((r.status, r.url)),
            )
            failed: list[str] = []
            page.on("requestfailed", lambda r: "/static/" in r.url and failed.append(r.url))

            await login(page, "admin", ADMIN_PASSWORD)
            hosts = page.locator("#host-list")
            await expect(hosts.locator(".loading")).to_have_count(0)
            link = hosts.locator(f'.host-link[data-host="{host_id}"]')
            await expect(link).to_be_visible()
            await expect(link.locator(".badge")).to_have_text("ok")
            # The only host is chosen by itself and its list comes in through htmx.
            await expect(link).to_have_attribute("aria-current", "true")
            opener = page.locator('#container-list .open-container[data-name="wheel-web"]')
            await expect(opener).to_be_visible()
            await opener.click()
            detail = page.locator('.detail[data-name="wheel-web"]')
            await expect(detail).to_be_visible()
            # xterm.js and its fit addon from the wheel, over the exec WebSocket.
            await detail.get_by_role("tab", name="Terminal").click()
            await detail.get_by_role("button", name="Connect", exact=True).click()
            await expect(detail.locator(".terminal-box")).to_have_attribute("data-connected", "1")
            await detail.locator(".term-host").click()
            await page.keyboard.type("echo from-the-wheel\n")
            echoed = detail.locator(
                ".xterm-rows > div", has_text=re.compile(r"^\s*from-the-wheel\s*$")
            )
            await expect(echoed).to_have_count(1)
            await detail.get_by_role("button", name="Disconnect", exact=True).click()
            await expect(detail.locator(".terminal-box")).to_have_attribute("data-connected", "0")
            # Before closing: closing the page aborts requests still in flight.
            errors = list(watch.errors)
        finally:
            await context.close()

    bad = [(status, url) for status, url in static if status >= 400]
    assert bad == [], f"static requests failed: {bad}"
    assert failed == [], f"static requests failed: {failed}"
    served = {url.rsplit("/", 1)[-1] for status, url in static if "/static/core/vendor/" in url}
    # Every vendored asset but the terminal-recording player, which only the replay
    # page loads (the wheel carries it: test_the_wheel_carries_the_vendored_assets).
    assert served == set(VENDOR_ASSETS) - {"asciinema-player.js", "asciinema-player.css"}
    assert errors == []


def _add_engine(base: str, token: str, body: dict[str, Any]) -> str:
    req = urllib.request.Request(
        base + "/api/docker/hosts",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201
        return json.loads(resp.read())["host_id"]


def test_a_missing_asset_stops_serve(installed: Installed, tmp_path: Path) -> None:
    asset = installed.package / "static" / "vendor" / "xterm.js"
    aside = tmp_path / "xterm.js"
    shutil.move(asset, aside)
    try:
        proc = installed.run("archnest", "serve", "--port", str(free_port()), timeout=60)
    finally:
        shutil.move(aside, asset)
    assert proc.returncode == 1
    assert "browser assets missing" in proc.stderr and "xterm.js" in proc.stderr
    assert "Traceback" not in proc.stderr
