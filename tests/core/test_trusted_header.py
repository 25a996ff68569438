"""Sign-in by a reverse proxy's Remote-User / Remote-Groups headers: believed only from a
direct peer in ARCHNEST_TRUSTED_PROXIES and only with ARCHNEST_TRUSTED_HEADER_AUTH=1; from
anyone else they are ignored."""

from __future__ import annotations

import pytest
from archnest import DB_KEY, Settings, create_app
from archnest.accounts import update_user
from archnest.db import User
from archnest.settings import parse_networks
from archnest.users import EXTERNAL_PASSWORD, create_user
from sqlmodel import select

LOOPBACK = parse_networks("127.0.0.1/32, ::1/128")
ELSEWHERE = parse_networks("10.0.0.0/8")
VIEWER = {"Remote-User": "hank", "Remote-Groups": "staff, archnest-viewers"}
ADMIN = {"Remote-User": "root-ish", "Remote-Groups": "archnest-admins"}


@pytest.fixture
def header_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.trusted_header_auth = True
    archnest_settings.trusted_proxies = LOOPBACK
    archnest_settings.oidc_admin_groups = ("archnest-admins",)
    archnest_settings.oidc_viewer_groups = ("archnest-viewers",)
    return archnest_settings


async def test_a_trusted_proxy_signs_users_in(aiohttp_client, header_settings) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(header_settings))
    me = await client.get("/api/auth/me", headers=VIEWER)
    assert me.status == 200
    assert await me.json() == {"username": "hank", "role": "viewer"}
    async with client.app[DB_KEY].session() as s:
        hank = (await s.exec(select(User).where(User.username == "hank"))).one()
    assert hank.password_hash == EXTERNAL_PASSWORD
    # Viewers may not change anything, admins may (same origin, as for sessions).
    assert (await client.post("/api/users", headers=VIEWER, json={})).status == 403
    base = str(client.make_url("")).rstrip("/")
    body = {"username": "newbie", "password": "newbie-password-1"}
    cross = await client.post("/api/users", headers=ADMIN, json=body)
    assert cross.status == 403
    assert (await cross.json())["error"]["code"] == "bad_origin"
    made = await client.post("/api/users", headers={**ADMIN, "Origin": base}, json=body)
    assert made.status == 201
    # No allowed group: refused with the reason.
    none = await client.get(
        "/api/auth/me", headers={"Remote-User": "eve", "Remote-Groups": "others"}
    )
    assert none.status == 403
    assert (await none.json())["error"]["code"] == "no_role"


async def test_a_disabled_user_stays_disabled(aiohttp_client, header_settings) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(header_settings))
    await create_user(client.app[DB_KEY], "hank", "hank-password-1", "viewer")
    await update_user(client.app[DB_KEY], "hank", disabled=True)
    r = await client.get("/api/auth/me", headers=VIEWER)
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "user_disabled"


async def test_spoofed_headers_from_an_untrusted_peer_get_nothing(
    aiohttp_client, header_settings
) -> None:  # type: ignore[no-untyped-def]
    # The test client connects from 127.0.0.1, which is not in 10.0.0.0/8.
    header_settings.trusted_proxies = ELSEWHERE
    client = await aiohttp_client(create_app(header_settings))
    for headers in (ADMIN, {**ADMIN, "X-Forwarded-For": "10.0.0.1"}):
        r = await client.get("/api/auth/me", headers=headers)
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"
        assert (await client.get("/api/users", headers=headers)).status == 401
    async with client.app[DB_KEY].session() as s:
        assert (await s.exec(select(User).where(User.username == "root-ish"))).first() is None


async def test_headers_are_ignored_unless_turned_on(aiohttp_client, header_settings) -> None:  # type: ignore[no-untyped-def]
    header_settings.trusted_header_auth = False
    client = await aiohttp_client(create_app(header_settings))
    assert (await client.get("/api/auth/me", headers=ADMIN)).status == 401
