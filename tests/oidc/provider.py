"""A real OpenID provider for the tests (tests/oidc/provider.mjs on node, the npm package
oidc-provider pinned in package-lock.json), and a script-side walk through its
development sign-in and consent pages for tests that do not drive a browser."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "oidc" / "provider.mjs"
CLIENT_ID = "archnest"
CLIENT_SECRET = "archnest-test-secret"
START_SECONDS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OidcProvider:
    issuer: str
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def env(self, admin: str = "archnest-admins", viewer: str = "archnest-viewers") -> dict:
        """The app's settings for this provider (Settings field names)."""
        return {
            "oidc_issuer": self.issuer,
            "oidc_client_id": self.client_id,
            "oidc_client_secret": self.client_secret,
            "oidc_name": "Test IdP",
            "oidc_admin_groups": (admin,),
            "oidc_viewer_groups": (viewer,),
        }


@asynccontextmanager
async def run_provider(
    port: int, redirect_uri: str, groups_in: str = "id_token"
) -> AsyncIterator[OidcProvider]:
    """Start the provider on 127.0.0.1:``port`` for a client redirecting to ``redirect_uri``."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found (apt-get install -y nodejs npm)")  # a failure under CI
    if not (REPO / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("npm package oidc-provider missing: run npm ci")  # a failure under CI
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": str(port),
        "REDIRECT_URI": redirect_uri,
        "PROVIDER_GROUPS_IN": groups_in,
        "NODE_NO_WARNINGS": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        cwd=str(REPO),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_SECONDS)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(f"the OpenID provider did not start: {line!r} {err[-2000:]!r}")
        yield OidcProvider(issuer=f"http://127.0.0.1:{port}")
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


async def sign_in_at_provider(authorize_url: str, redirect_uri: str, login: str) -> str:
    """Follow the provider's pages as a browser would (sign in as ``login``, consent) and
    return the URL it sends the browser back to (``redirect_uri?code=...&state=...``)."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        url, method, data = authorize_url, "GET", None
        for _ in range(20):
            async with http.request(method, url, data=data, allow_redirects=False) as resp:
                if resp.status in (302, 303):
                    url = urljoin(url, resp.headers["Location"])
                    method, data = "GET", None
                    if url.startswith(redirect_uri):
                        return url
                    continue
                page = await resp.text()
                assert resp.status == 200, (resp.status, page[:2000])
            action = _FORM_ACTION.search(page)
            assert action, page[:2000]
            url, method = urljoin(url, unescape(action.group(1))), "POST"
            if 'name="login"' in page:
                data = {"prompt": "login", "login": login, "password": "any-password"}
            else:
                data = {"prompt": "consent"}
    raise AssertionError("the provider never sent the browser back")
