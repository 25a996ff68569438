"""Login redirects, login CSRF, throttling under concurrency, cookie flags."""

from __future__ import annotations

import asyncio
import time

import pytest
from archnest.keys import PASSWORD_VERIFIER_KEY
from archnest.testing import ADMIN_PASSWORD


def _origin(client) -> str:
    return str(client.make_url("")).rstrip("/")


@pytest.mark.parametrize(
    "nxt",
    [
        "//evil.example/",
        "/\\evil.example/",
        "/\\/evil.example/",
        "/\t/evil.example/",
        "/\n/evil.example/",
        "https://evil.example/",
        "javascript:alert(1)",
    ],
)
async def test_login_next_never_leaves_the_site(archnest_client, nxt):
    resp = await archnest_client.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD, "next": nxt},
        headers={"Origin": _origin(archnest_client)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/"


async def test_login_next_keeps_a_local_path(archnest_client):
    resp = await archnest_client.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD, "next": "/containers?host=docker:1"},
        headers={"Origin": _origin(archnest_client)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/containers?host=docker:1"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


async def test_json_login_from_another_site_is_refused(archnest_client):
    # A cross-site text/plain form can carry a JSON body: that would be login CSRF.
    resp = await archnest_client.post(
        "/api/auth/login",
        data=f'{{"username": "admin", "password": "{ADMIN_PASSWORD}"}}',
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "bad_origin"
    assert "Set-Cookie" not in resp.headers
    # Same origin (a browser on the site) and no origin (a script) still work.
    for headers in ({"Origin": _origin(archnest_client)}, {}):
        ok = await archnest_client.post(
            "/api/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            headers=headers,
        )
        assert ok.status == 200


async def test_parallel_guesses_are_charged_like_sequential_ones(archnest_client):
    # Each attempt is charged when it arrives, so a burst in parallel gets no more
    # guesses than the same attempts one after another — and nobody waits in a queue.
    body = {"username": "admin", "password": "wrong-password"}
    start = time.monotonic()
    results = await asyncio.gather(
        *(archnest_client.post("/api/auth/login", json=body) for _ in range(20))
    )
    elapsed = time.monotonic() - start
    statuses = [r.status for r in results]
    assert set(statuses) <= {401, 429} and 1 <= statuses.count(401) <= 5, statuses
    assert all("Retry-After" in r.headers for r in results if r.status == 429)
    # Twenty sequential checks would take seconds; refusals are immediate.
    assert elapsed < 3.0, elapsed
    assert archnest_client.app[PASSWORD_VERIFIER_KEY].pending == 0  # nothing left behind


async def test_session_cookie_from_another_origin_cannot_mutate(archnest_client):
    login = await archnest_client.post(
        "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert login.status == 200
    for headers in ({"Origin": "https://evil.example"}, {}, {"Origin": "null"}):
        resp = await archnest_client.post(
            "/api/docker/hosts", json={"name": "x", "url": "tcp://127.0.0.1:1"}, headers=headers
        )
        assert resp.status == 403, headers
        assert (await resp.json())["error"]["code"] == "bad_origin"
