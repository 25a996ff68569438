"""Users and API tokens over HTTP (docs/api.md "Users and API tokens"), through the real
app on SQLite or PostgreSQL (ARCHNEST_TEST_DB)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from archnest import DB_KEY, create_app
from archnest.db import ApiToken, Database, utcnow
from archnest.keys import AUTH_CACHE_KEY
from archnest.migrate import alembic_config, core_lineage, upgrade
from archnest.plugins import build_plugin_manager
from archnest.secrets import sha256_hex
from archnest.testing import ADMIN_PASSWORD, make_user_headers
from archnest.users import create_session, create_user, issue_token
from sqlmodel import select

BOB_PASSWORD = "bob-password-1"


def _origin(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Origin": str(client.make_url("")).rstrip("/")}


async def _login(client, username: str, password: str):  # type: ignore[no-untyped-def]
    return await client.post("/api/auth/login", json={"username": username, "password": password})


async def _bob(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return await make_user_headers(client, "bob", "viewer", BOB_PASSWORD)


async def _error(resp) -> dict:  # type: ignore[no-untyped-def]
    return (await resp.json())["error"]


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"archnest_session={token}"}


async def _session_of(client, username: str) -> str:  # type: ignore[no-untyped-def]
    """A web session of ``username`` (what a sign-in makes), without a cookie jar."""
    from archnest.db import User

    db = client.app[DB_KEY]
    async with db.session() as s:
        user = (await s.exec(select(User).where(User.username == username))).one()
    return await create_session(db, user)


async def test_list_add_change_delete(archnest_client, admin_headers):
    c = archnest_client
    r = await c.get("/api/users", headers=admin_headers)
    assert r.status == 200
    users = {u["username"]: u for u in await r.json()}
    assert set(users) == {"admin", "alice"}
    assert set(users["alice"]) == {"username", "role", "disabled", "created_at", "last_login_at"}
    assert users["alice"]["role"] == "admin" and users["alice"]["disabled"] is False
    assert users["alice"]["last_login_at"] is None

    r = await c.post(
        "/api/users",
        json={"username": "bob", "role": "viewer", "password": BOB_PASSWORD},
        headers=admin_headers,
    )
    assert r.status == 201
    assert (await r.json())["username"] == "bob" and (await r.json())["role"] == "viewer"
    assert (await _login(c, "bob", BOB_PASSWORD)).status == 200

    # Refusals name their field.
    again = await c.post(
        "/api/users", json={"username": "bob", "password": "other-password"}, headers=admin_headers
    )
    assert again.status == 409
    assert await _error(again) == {
        "code": "user_exists",
        "message": "user 'bob' already exists",
        "field": "username",
    }
    for body, field in (
        ({"username": "bad name", "password": "long-enough"}, "username"),
        ({"username": "carol", "password": "short"}, "password"),
        ({"username": "carol", "password": "long-enough", "role": "root"}, "role"),
        ({"username": "carol", "password": "long-enough", "admin": True}, "admin"),
    ):
        r = await c.post("/api/users", json=body, headers=admin_headers)
        assert r.status == 400, body
        assert (await _error(r))["field"] == field, body

    r = await c.patch("/api/users/bob", json={"role": "admin"}, headers=admin_headers)
    assert r.status == 200 and (await r.json())["role"] == "admin"
    r = await c.patch("/api/users/nobody", json={"role": "admin"}, headers=admin_headers)
    assert r.status == 404 and (await _error(r))["code"] == "unknown_user"
    r = await c.patch("/api/users/bob", json={"colour": "blue"}, headers=admin_headers)
    assert r.status == 400 and (await _error(r))["field"] == "colour"

    r = await c.delete("/api/users/bob", headers=admin_headers)
    assert r.status == 200 and await r.json() == {"ok": True, "username": "bob"}
    assert (await c.delete("/api/users/bob", headers=admin_headers)).status == 404
    names = [u["username"] for u in await (await c.get("/api/users", headers=admin_headers)).json()]
    assert names == ["admin", "alice"]


async def test_sign_in_records_last_login(archnest_client, admin_headers):
    c = archnest_client
    await _bob(c)
    assert (await _login(c, "bob", BOB_PASSWORD)).status == 200
    users = {
        u["username"]: u for u in await (await c.get("/api/users", headers=admin_headers)).json()
    }
    assert users["bob"]["last_login_at"] is not None
    assert users["alice"]["last_login_at"] is None  # a token is not a sign-in


async def test_no_change_may_leave_no_active_admin(archnest_client, admin_headers):
    c = archnest_client
    # Two admins: "admin" (first run) and alice (whose token this is). Demote one ...
    r = await c.patch("/api/users/admin", json={"role": "viewer"}, headers=admin_headers)
    assert r.status == 200
    # ... and alice is the last active admin: no demotion, disabling or deletion.
    for method, body in (
        ("PATCH", {"role": "viewer"}),
        ("PATCH", {"disabled": True}),
        ("DELETE", None),
    ):
        r = await c.request(method, "/api/users/alice", json=body, headers=admin_headers)
        assert r.status == 409, (method, body)
        error = await _error(r)
        assert error["code"] == "last_admin" and "no active admin" in error["message"]
    # A disabled admin does not count.
    r = await c.patch(
        "/api/users/admin", json={"role": "admin", "disabled": True}, headers=admin_headers
    )
    assert r.status == 200
    r = await c.delete("/api/users/alice", headers=admin_headers)
    assert r.status == 409
    users = {
        u["username"]: u for u in await (await c.get("/api/users", headers=admin_headers)).json()
    }
    assert users["alice"] == {**users["alice"], "role": "admin", "disabled": False}
    # With another active admin, alice may go, and her own token ends with her.
    assert (
        await c.patch("/api/users/admin", json={"disabled": False}, headers=admin_headers)
    ).status == 200
    assert (await c.delete("/api/users/alice", headers=admin_headers)).status == 200
    assert (await c.get("/api/auth/me", headers=admin_headers)).status == 401


async def test_concurrent_demotions_leave_an_admin(archnest_client, admin_headers):
    c = archnest_client
    assert (await _login(c, "admin", ADMIN_PASSWORD)).status == 200
    # Both admins demote each other at the same moment: one of them must be refused.
    results = await asyncio.gather(
        c.patch("/api/users/admin", json={"role": "viewer"}, headers=admin_headers),
        c.patch("/api/users/alice", json={"disabled": True}, headers=admin_headers),
    )
    assert sorted(r.status for r in results) == [200, 409]
    users = await (await _admin_view(c)).json()
    assert [u for u in users if u["role"] == "admin" and not u["disabled"]]


async def _admin_view(c):  # type: ignore[no-untyped-def]
    # Whoever is left as admin: read straight from the database-backed list.
    headers = await make_user_headers(c, "auditor", "admin")
    return await c.get("/api/users", headers=headers)


async def test_disabled_user_is_refused_from_the_next_request(archnest_client, admin_headers):
    c = archnest_client
    bob_token = await _bob(c)
    session = await _session_of(c, "bob")
    # Both credentials work (and are now in the credential cache).
    assert (await c.get("/api/auth/me", headers=bob_token)).status == 200
    assert (await c.get("/api/auth/me", headers=_cookie(session))).status == 200

    r = await c.patch("/api/users/bob", json={"disabled": True}, headers=admin_headers)
    assert r.status == 200 and (await r.json())["disabled"] is True
    assert (await c.get("/api/auth/me", headers=bob_token)).status == 401
    assert (await c.get("/api/auth/me", headers=_cookie(session))).status == 401
    page = await c.get(
        "/containers", headers={**_cookie(session), "Accept": "text/html"}, allow_redirects=False
    )
    assert page.status == 302 and page.headers["Location"].startswith("/login")
    # Signing in fails exactly like a wrong password.
    disabled = await _login(c, "bob", BOB_PASSWORD)
    wrong = await _login(c, "nobody", "wrong-password")
    assert disabled.status == wrong.status == 401
    assert await disabled.json() == await wrong.json()

    # Enabled again: tokens work again; the ended session does not come back.
    assert (
        await c.patch("/api/users/bob", json={"disabled": False}, headers=admin_headers)
    ).status == 200
    assert (await c.get("/api/auth/me", headers=bob_token)).status == 200
    assert (await c.get("/api/auth/me", headers=_cookie(session))).status == 401
    assert (await _login(c, "bob", BOB_PASSWORD)).status == 200


async def test_deleted_user_credentials_end_at_once(archnest_client, admin_headers):
    c = archnest_client
    bob_token = await _bob(c)
    session = await _session_of(c, "bob")
    assert (await c.get("/api/hosts", headers=bob_token)).status == 200
    assert (await c.get("/api/hosts", headers=_cookie(session))).status == 200
    assert (await c.delete("/api/users/bob", headers=admin_headers)).status == 200
    assert (await c.get("/api/hosts", headers=bob_token)).status == 401
    assert (await c.get("/api/hosts", headers=_cookie(session))).status == 401
    async with c.app[DB_KEY].session() as s:
        left = [t.token_hash for t in (await s.exec(select(ApiToken))).all()]
    # Only alice's token is left: bob's rows went with him, not just out of the cache.
    assert left == [sha256_hex(admin_headers["Authorization"].split()[1])]


async def test_role_change_applies_from_the_next_request(archnest_client, admin_headers):
    c = archnest_client
    bob = await _bob(c)
    body = {"username": "carol", "password": "carol-password"}
    assert (await c.post("/api/users", json=body, headers=bob)).status == 403
    assert (await c.get("/api/users", headers=bob)).status == 403
    assert (
        await c.patch("/api/users/bob", json={"role": "admin"}, headers=admin_headers)
    ).status == 200
    assert (await c.get("/api/users", headers=bob)).status == 200
    assert (await c.post("/api/users", json=body, headers=bob)).status == 201
    assert (
        await c.patch("/api/users/bob", json={"role": "viewer"}, headers=admin_headers)
    ).status == 200
    assert (await c.get("/api/users", headers=bob)).status == 403
    me = await (await c.get("/api/auth/me", headers=bob)).json()
    assert me == {"username": "bob", "role": "viewer"}


async def test_viewer_gets_403_on_admin_routes_and_anonymous_401(archnest_client, viewer_headers):
    c = archnest_client
    calls = (
        ("GET", "/api/users", None),
        ("POST", "/api/users", {"username": "x1", "password": "password-1"}),
        ("PATCH", "/api/users/admin", {"role": "viewer"}),
        ("DELETE", "/api/users/admin", None),
        ("GET", "/settings/users", None),
    )
    for method, path, body in calls:
        r = await c.request(method, path, json=body, headers=viewer_headers)
        assert r.status == 403, (method, path)
        r = await c.request(method, path, json=body, headers=_origin(c))
        assert r.status == 401, (method, path)
    page = await c.get("/account", headers=viewer_headers)
    assert page.status == 200 and "Change password" in await page.text()


async def test_own_tokens_create_list_use_revoke(archnest_client, admin_headers, viewer_headers):
    c = archnest_client
    r = await c.post(
        "/api/tokens", json={"name": "backup", "expires_in_days": None}, headers=viewer_headers
    )
    assert r.status == 201
    created = await r.json()
    assert set(created) == {"id", "name", "token", "expires_at"}
    assert created["name"] == "backup" and created["expires_at"] is None
    mine = {"Authorization": f"Bearer {created['token']}"}
    assert (await (await c.get("/api/auth/me", headers=mine)).json())["username"] == "victor"

    listed = await (await c.get("/api/tokens", headers=viewer_headers)).json()
    assert {t["name"] for t in listed} == {"test", "backup"}  # victor's own only
    assert all(
        set(t) == {"id", "name", "username", "created_at", "last_used_at", "expires_at"}
        for t in listed
    )
    assert created["token"] not in str(listed)
    assert {t["name"]: t for t in listed}["backup"]["last_used_at"] is not None

    # Everyone's tokens are for admins only.
    assert (await c.get("/api/tokens?all=1", headers=viewer_headers)).status == 403
    assert (await c.get("/api/tokens?all=yes", headers=admin_headers)).status == 400
    every = await (await c.get("/api/tokens?all=1", headers=admin_headers)).json()
    assert {(t["username"], t["name"]) for t in every} == {
        ("alice", "test"),
        ("victor", "test"),
        ("victor", "backup"),
    }
    alice_id = next(t["id"] for t in every if t["username"] == "alice")

    # Another user's token is 404, the same as a missing one; an admin may revoke any.
    r = await c.delete(f"/api/tokens/{alice_id}", headers=viewer_headers)
    assert r.status == 404 and (await _error(r))["code"] == "unknown_token"
    assert (await c.delete("/api/tokens/999999", headers=viewer_headers)).status == 404
    assert (await c.get("/api/auth/me", headers=admin_headers)).status == 200
    r = await c.delete(f"/api/tokens/{created['id']}", headers=admin_headers)
    assert r.status == 200 and await r.json() == {"ok": True, "id": created["id"]}
    assert (await c.get("/api/auth/me", headers=mine)).status == 401

    # The owner revokes their own, even the one they are using.
    own = next(t["id"] for t in listed if t["name"] == "test")
    assert (await c.delete(f"/api/tokens/{own}", headers=viewer_headers)).status == 200
    assert (await c.get("/api/auth/me", headers=viewer_headers)).status == 401


async def test_token_body_is_checked(archnest_client, viewer_headers):
    c = archnest_client
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": "n", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "n", "expires_in_days": 3651}, "expires_in_days"),
        ({"name": "n", "expires_in_days": "7"}, "expires_in_days"),
        ({"name": "n", "scope": "all"}, "scope"),
    ):
        r = await c.post("/api/tokens", json=body, headers=viewer_headers)
        assert r.status == 400, body
        assert (await _error(r))["field"] == field, body
    r = await c.post(
        "/api/tokens", json={"name": "week", "expires_in_days": 7}, headers=viewer_headers
    )
    assert r.status == 201
    expires = (await r.json())["expires_at"]
    from datetime import datetime

    left = datetime.fromisoformat(expires.replace("Z", "+00:00")) - utcnow()
    assert timedelta(days=6, hours=23) < left <= timedelta(days=7)


async def test_expired_tokens_get_401(archnest_client):
    c = archnest_client
    db = c.app[DB_KEY]
    user = await create_user(db, "bob", BOB_PASSWORD, "viewer")
    _, old = await issue_token(db, user.id, "old", utcnow() - timedelta(seconds=1))
    r = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {old}"})
    assert r.status == 401 and (await _error(r))["code"] == "unauthorized"
    # A token that expires while it sits in the credential cache (5 s) ends on time.
    _, short = await issue_token(db, user.id, "short", utcnow() + timedelta(seconds=1.5))
    headers = {"Authorization": f"Bearer {short}"}
    assert (await c.get("/api/auth/me", headers=headers)).status == 200
    await asyncio.sleep(1.7)
    assert (await c.get("/api/auth/me", headers=headers)).status == 401


async def test_last_used_is_written_at_most_once_a_minute(archnest_client, viewer_headers):
    c = archnest_client
    db, cache = c.app[DB_KEY], c.app[AUTH_CACHE_KEY]
    digest = "t:" + sha256_hex(viewer_headers["Authorization"].split()[1])

    async def last_used():  # type: ignore[no-untyped-def]
        async with db.session() as s:
            return (
                await s.exec(select(ApiToken.last_used_at).where(ApiToken.name == "test"))
            ).all()

    assert await last_used() == [None]
    assert (await c.get("/api/hosts", headers=viewer_headers)).status == 200
    victor_first = [v for v in await last_used() if v is not None]
    assert len(victor_first) == 1
    # More requests, past the cache too: no second write within the minute.
    for _ in range(5):
        cache.forget(digest)
        assert (await c.get("/api/hosts", headers=viewer_headers)).status == 200
    assert [v for v in await last_used() if v is not None] == victor_first
    # A minute later, the next request writes it again.
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.update(ApiToken.__table__)
            .where(ApiToken.__table__.c.last_used_at.is_not(None))
            .values(last_used_at=utcnow() - timedelta(minutes=2))
        )
    cache.forget(digest)
    assert (await c.get("/api/hosts", headers=viewer_headers)).status == 200
    [again] = [v for v in await last_used() if v is not None]
    assert again > victor_first[0]


async def test_change_own_password(archnest_client):
    c = archnest_client
    bob_token = await _bob(c)
    here = await _session_of(c, "bob")
    elsewhere = await _session_of(c, "bob")
    headers = {**_cookie(here), **_origin(c)}

    r = await c.post(
        "/api/auth/password",
        json={"current": "wrong-one", "new": "new-password-1"},
        headers=headers,
    )
    assert r.status == 400
    assert await _error(r) == {
        "code": "wrong_password",
        "message": "the current password is not right",
        "field": "current",
    }
    r = await c.post(
        "/api/auth/password", json={"current": BOB_PASSWORD, "new": "short"}, headers=headers
    )
    assert r.status == 400 and (await _error(r))["field"] == "new"
    # A cookie from another site is refused before anything is checked.
    r = await c.post(
        "/api/auth/password",
        json={"current": BOB_PASSWORD, "new": "new-password-1"},
        headers={**_cookie(here), "Origin": "https://evil.example"},
    )
    assert r.status == 403

    r = await c.post(
        "/api/auth/password",
        json={"current": BOB_PASSWORD, "new": "new-password-1"},
        headers=headers,
    )
    assert r.status == 200 and await r.json() == {"ok": True}
    assert (await c.get("/api/auth/me", headers=_cookie(here))).status == 200
    assert (await c.get("/api/auth/me", headers=_cookie(elsewhere))).status == 401
    assert (await c.get("/api/auth/me", headers=bob_token)).status == 200
    assert (await _login(c, "bob", BOB_PASSWORD)).status == 401
    assert (await _login(c, "bob", "new-password-1")).status == 200

    # With a bearer token (a script) it works the same; the token stays valid.
    body = {"current": "new-password-1", "new": "newer-password-2"}
    assert (await c.post("/api/auth/password", json=body, headers=bob_token)).status == 200
    assert (await c.get("/api/auth/me", headers=bob_token)).status == 200


async def test_wrong_current_passwords_are_throttled(archnest_client):
    c = archnest_client
    bob = await _bob(c)
    body = {"current": "wrong-password", "new": "new-password-1"}
    for _ in range(5):
        assert (await c.post("/api/auth/password", json=body, headers=bob)).status == 400
    r = await c.post("/api/auth/password", json=body, headers=bob)
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1


async def test_admin_resets_a_password(archnest_client, admin_headers):
    c = archnest_client
    bob_token = await _bob(c)
    session = await _session_of(c, "bob")
    r = await c.patch(
        "/api/users/bob", json={"password": "reset-password-1"}, headers=admin_headers
    )
    assert r.status == 200
    assert (await c.get("/api/auth/me", headers=_cookie(session))).status == 401
    assert (await c.get("/api/auth/me", headers=bob_token)).status == 200
    assert (await _login(c, "bob", "reset-password-1")).status == 200
    r = await c.patch("/api/users/bob", json={"password": "short"}, headers=admin_headers)
    assert r.status == 400 and (await _error(r))["field"] == "password"


async def test_upgrade_and_downgrade_keep_users_and_tokens(
    aiohttp_client, archnest_settings, archnest_database_url
):
    """A database of the previous release (core_0003): its users stay enabled, its tokens
    never expire and keep working; going back to core_0003 loses no row either (a table
    rebuild of ``users`` on SQLite would take every token and session with it)."""

    def migrate_core(connection, revision: str, down: bool = False) -> None:  # type: ignore[no-untyped-def]
        cfg = alembic_config(core_lineage())
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)

    async def count(table: str) -> int:
        async with db.engine.connect() as conn:
            return (await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one()

    db = Database(archnest_database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(migrate_core, "core_0003")
            now = utcnow()
            await conn.execute(
                sa.text(
                    "INSERT INTO users (username, password_hash, role, created_at)"
                    " VALUES ('old', 'x', 'admin', :now)"
                ),
                {"now": now},
            )
            for table, column, value in (
                ("api_tokens", "name", "legacy"),
                ("web_sessions", "expires_at", now + timedelta(days=1)),
            ):
                await conn.execute(
                    sa.text(
                        f"INSERT INTO {table} (user_id, {column}, token_hash, created_at)"
                        " SELECT id, :value, :hash, :now FROM users WHERE username = 'old'"
                    ),
                    {"value": value, "hash": sha256_hex("an_legacy-token"), "now": now},
                )
        await upgrade(db.engine, build_plugin_manager(allow=[]))
        assert (await count("api_tokens"), await count("web_sessions")) == (1, 1)

        c = await aiohttp_client(create_app(archnest_settings))
        headers = {"Authorization": "Bearer an_legacy-token"}
        assert (await c.get("/api/auth/me", headers=headers)).status == 200
        assert (await c.get("/api/auth/me", headers=_cookie("an_legacy-token"))).status == 200
        users = {
            u["username"]: u for u in await (await c.get("/api/users", headers=headers)).json()
        }
        assert users["old"]["disabled"] is False and users["old"]["last_login_at"] is None
        [token] = await (await c.get("/api/tokens", headers=headers)).json()
        assert token["name"] == "legacy" and token["expires_at"] is None
        await c.close()

        async with db.engine.begin() as conn:
            await conn.run_sync(migrate_core, "core_0003", True)
        assert (await count("users"), await count("api_tokens"), await count("web_sessions")) == (
            1,
            1,
            1,
        )
    finally:
        await db.dispose()


async def test_cli_token_with_expiry(archnest_client, archnest_settings, monkeypatch, capsys):
    from archnest.cli import main

    c = archnest_client
    await create_user(c.app[DB_KEY], "bob", BOB_PASSWORD, "viewer")
    for key in [k for k in os.environ if k.startswith("ARCHNEST_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("ARCHNEST_DATA_DIR", str(archnest_settings.data_dir))
    monkeypatch.setenv("ARCHNEST_DATABASE_URL", archnest_settings.database_url)
    args = ["token", "create", "bob", "--name", "cron", "--expires-in-days", "2"]
    assert await asyncio.to_thread(main, args) == 0
    token = capsys.readouterr().out.strip()
    assert (await c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status == 200
    [row] = await (await c.get("/api/tokens", headers={"Authorization": f"Bearer {token}"})).json()
    assert row["name"] == "cron" and row["expires_at"] is not None
    for bad in ("0", "3651", "²", "1.5"):
        with pytest.raises(SystemExit):
            main(["token", "create", "bob", "--expires-in-days", bad])
