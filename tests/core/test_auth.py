"""Sessions, tokens, CSRF/origin checks, throttling, first-run admin."""

import subprocess
import sys

from archnest import DB_KEY
from archnest.db import ApiToken, User
from archnest.testing import ADMIN_PASSWORD, make_user_headers
from sqlmodel import select
from yarl import URL


async def _login(client, username="admin", password=ADMIN_PASSWORD):
    return await client.post("/api/auth/login", json={"username": username, "password": password})


async def test_json_login_sets_httponly_samesite_cookie(archnest_client):
    r = await _login(archnest_client)
    assert r.status == 200
    assert (await r.json())["user"] == {"username": "admin", "role": "admin"}
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_wrong_pairs_get_one_uniform_401(archnest_client):
    unknown = await _login(archnest_client, "nobody", "whatever-123")
    wrong = await _login(archnest_client, "admin", "wrong-password")
    assert unknown.status == wrong.status == 401
    assert (await unknown.json()) == (await wrong.json())


async def test_repeated_failures_are_refused_at_once(archnest_client):
    for _ in range(5):
        assert (await _login(archnest_client, "admin", "wrong-password")).status == 401
    r = await _login(archnest_client, "admin", "wrong-password")
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    assert (await r.json())["error"]["code"] == "too_many_attempts"
    # The budget is per username: another one from this client is still checked.
    assert (await _login(archnest_client, "nobody", "wrong-password")).status == 401


async def test_malformed_login_body_is_400(archnest_client):
    r = await archnest_client.post(
        "/api/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status == 400
    assert (await r.json())["error"]["code"] == "malformed_json"


async def test_cookie_mutation_requires_same_origin(archnest_client):
    await _login(archnest_client)
    base = str(archnest_client.make_url("")).rstrip("/")
    # A cookie-authenticated unsafe request from another origin is refused ...
    evil = await archnest_client.post(
        "/api/auth/logout", headers={"Origin": "https://evil.example", "Accept": "application/json"}
    )
    assert evil.status == 403
    # ... and the session is still valid afterwards.
    assert (await archnest_client.get("/api/auth/me")).status == 200
    ok = await archnest_client.post(
        "/api/auth/logout", headers={"Origin": base, "Accept": "application/json"}
    )
    assert ok.status == 200
    assert (await archnest_client.get("/api/auth/me")).status == 401


async def test_bearer_tokens_are_stored_hashed(archnest_client):
    headers = await make_user_headers(archnest_client, "bob", "viewer")
    token = headers["Authorization"].split()[1]
    r = await archnest_client.get("/api/auth/me", headers=headers)
    assert (await r.json()) == {"username": "bob", "role": "viewer"}
    async with archnest_client.app[DB_KEY].session() as s:
        rows = (await s.exec(select(ApiToken))).all()
    assert rows and all(token not in row.token_hash for row in rows)
    bad = await archnest_client.get("/api/auth/me", headers={"Authorization": "Bearer an_nope"})
    assert bad.status == 401


async def test_passwords_use_argon2(archnest_client):
    async with archnest_client.app[DB_KEY].session() as s:
        admin = (await s.exec(select(User).where(User.username == "admin"))).one()
    assert admin.password_hash.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in admin.password_hash


async def test_login_form_and_redirects(archnest_client):
    r = await archnest_client.get(
        "/containers", headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert r.status == 302 and r.headers["Location"].startswith("/login?next=")
    # The whole page address survives the detour, its own query included.
    r = await archnest_client.get(
        "/containers?host=ssh:1&tab=logs", headers={"Accept": "text/html"}, allow_redirects=False
    )
    location = URL(r.headers["Location"])
    assert location.path == "/login" and set(location.query) == {"next"}
    assert location.query["next"] == "/containers?host=ssh:1&tab=logs"
    page = await archnest_client.get(str(location))
    assert 'value="/containers?host=ssh:1&amp;tab=logs"' in await page.text()
    base = str(archnest_client.make_url("")).rstrip("/")
    r = await archnest_client.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD, "next": "//evil.example/x"},
        headers={"Origin": base},
        allow_redirects=False,
    )
    # Open redirects are refused: only same-site relative paths are followed.
    assert r.status == 303 and r.headers["Location"] == "/"
    bad = await archnest_client.post(
        "/login", data={"username": "admin", "password": "nope-nope"}, headers={"Origin": base}
    )
    assert bad.status == 401 and "invalid username or password" in await bad.text()


async def test_unknown_api_route_is_json_404(archnest_client, viewer_headers):
    r = await archnest_client.get("/api/nope", headers=viewer_headers)
    assert r.status == 404
    assert (await r.json())["error"]["code"] == "not_found"


def test_passwords_are_hashed_at_the_production_cost_outside_tests() -> None:
    """The test suite hashes at a test cost (archnest.testing); the app itself keeps
    argon2id at 64 MiB, three passes, four lanes (a fresh interpreter, no fixtures)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from archnest.users import hash_password; print(hash_password('x'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), out
