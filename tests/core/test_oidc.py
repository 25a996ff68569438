"""OpenID Connect sign-in against a real provider (oidc-provider on node, tests/oidc):
the code flow with PKCE, the state, nonce and replay checks, groups to roles, external
users, and password sign-in turned off."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from archnest import DB_KEY, Settings, create_app
from archnest.accounts import update_user
from archnest.audit import audit_log
from archnest.db import User
from archnest.keys import OIDC_KEY, SETTINGS_KEY
from archnest.oidc_client import FLOW_COOKIE, ReplayGuard
from archnest.sso import sign_in_external
from archnest.testing import ADMIN_PASSWORD
from archnest.users import EXTERNAL_PASSWORD, create_token, create_user
from sqlmodel import select
from yarl import URL

from tests.oidc.provider import free_port, run_provider, sign_in_at_provider


@dataclasses.dataclass
class Sso:
    client: TestClient
    redirect_uri: str

    async def start(self, next_path: str = "/containers") -> str:
        r = await self.client.get(
            "/auth/oidc/login", params={"next": next_path}, allow_redirects=False
        )
        assert r.status == 302, await r.text()
        return r.headers["Location"]

    async def callback(self, url: str, cookie: str | None = None) -> Any:
        target = URL(url)
        headers = None
        if cookie is not None:
            # Sent instead of the one the browser holds.
            self.client.session.cookie_jar.clear(lambda morsel: morsel.key == FLOW_COOKIE)
            headers = {"Cookie": f"{FLOW_COOKIE}={cookie}"}
        return await self.client.get(
            target.path, params=target.query, allow_redirects=False, headers=headers
        )

    def flow_cookie(self) -> str:
        for cookie in self.client.session.cookie_jar:
            if cookie.key == FLOW_COOKIE:
                return cookie.value
        raise AssertionError("no flow cookie")

    async def sign_in(self, login: str, next_path: str = "/containers") -> Any:
        url = await sign_in_at_provider(await self.start(next_path), self.redirect_uri, login)
        return await self.callback(url)


async def _sso(
    aiohttp_client, settings: Settings, groups_in: str = "id_token"
) -> AsyncIterator[Sso]:  # type: ignore[no-untyped-def]
    app_port = free_port()
    redirect_uri = f"http://127.0.0.1:{app_port}/auth/oidc/callback"
    async with run_provider(free_port(), redirect_uri, groups_in) as provider:
        for key, value in provider.env().items():
            setattr(settings, key, value)
        client = await aiohttp_client(create_app(settings), server_kwargs={"port": app_port})
        yield Sso(client, redirect_uri)


@pytest.fixture
async def sso(aiohttp_client, archnest_settings: Settings) -> AsyncIterator[Sso]:  # type: ignore[no-untyped-def]
    async for one in _sso(aiohttp_client, archnest_settings):
        yield one


async def _user(client: TestClient, username: str) -> User | None:
    async with client.app[DB_KEY].session() as s:
        return (await s.exec(select(User).where(User.username == username))).first()


async def _audit_rows(client: TestClient) -> list[Any]:
    async with client.app[DB_KEY].engine.connect() as conn:
        rows = await conn.execute(sa.select(audit_log).order_by(audit_log.c.id))
        return list(rows)


async def test_sign_in_creates_an_external_admin_with_a_session(sso: Sso) -> None:
    r = await sso.sign_in("alice")
    assert r.status == 303, await r.text()
    assert r.headers["Location"] == "/containers"
    assert "archnest_session=" in r.headers.getall("Set-Cookie")[0] or any(
        "archnest_session=" in c for c in r.headers.getall("Set-Cookie")
    )
    me = await sso.client.get("/api/auth/me")
    assert me.status == 200
    assert await me.json() == {"username": "alice", "role": "admin"}
    user = await _user(sso.client, "alice")
    assert user is not None and user.password_hash == EXTERNAL_PASSWORD
    # External: no password signs it in.
    for password in (EXTERNAL_PASSWORD, "any-password"):
        wrong = await sso.client.post(
            "/api/auth/login", json={"username": "alice", "password": password}
        )
        assert wrong.status == 401
    rows = [row for row in await _audit_rows(sso.client) if row.user == "alice"]
    assert rows[0].action == "login" and rows[0].result == "ok"
    assert '"method":"oidc"' in rows[0].detail.replace(" ", "")


async def test_role_follows_the_groups_at_each_sign_in(sso: Sso) -> None:
    # bob exists here as an admin; his provider groups make him a viewer.
    await create_user(sso.client.app[DB_KEY], "bob", "bob-password-1", "admin")
    r = await sso.sign_in("bob", next_path="//evil.example/x")
    assert r.status == 303
    assert r.headers["Location"] == "/"  # only same-site paths
    assert await (await sso.client.get("/api/auth/me")).json() == {
        "username": "bob",
        "role": "viewer",
    }
    assert (await sso.client.get("/settings/users")).status == 403


async def test_no_allowed_group_is_refused_with_the_reason(sso: Sso) -> None:
    r = await sso.sign_in("eve")
    assert r.status == 403
    page = await r.text()
    assert (
        "eve is signed in, but none of their groups may use ArchNest; ask an administrator for access"
        in page
    )
    assert all("archnest_session=" not in c for c in r.headers.getall("Set-Cookie", []))
    assert await _user(sso.client, "eve") is None
    assert (await sso.client.get("/api/auth/me")).status == 401
    rows = await _audit_rows(sso.client)
    assert (rows[-1].action, rows[-1].user, rows[-1].result) == ("login.failed", "eve", "no_role")


async def test_a_disabled_user_stays_disabled(sso: Sso) -> None:
    db = sso.client.app[DB_KEY]
    await create_user(db, "alice", "alice-password-1", "admin")
    await update_user(db, "alice", disabled=True)
    r = await sso.sign_in("alice")
    assert r.status == 403
    assert "disabled" in await r.text()
    assert (await sso.client.get("/api/auth/me")).status == 401


async def test_a_tampered_state_is_refused(sso: Sso) -> None:
    url = await sign_in_at_provider(await sso.start(), sso.redirect_uri, "alice")
    tampered = URL(url).update_query(state="x" + URL(url).query["state"][1:])
    r = await sso.callback(str(tampered))
    assert r.status == 400
    assert "state does not match" in await r.text()
    assert (await sso.client.get("/api/auth/me")).status == 401


async def test_an_answer_naming_another_issuer_is_refused(sso: Sso) -> None:
    url = await sign_in_at_provider(await sso.start(), sso.redirect_uri, "alice")
    assert "iss" in URL(url).query  # the provider names itself (RFC 9207)
    r = await sso.callback(str(URL(url).update_query(iss="https://evil.example")))
    assert r.status == 400
    assert "another provider" in await r.text()


async def test_a_replayed_callback_is_refused(sso: Sso) -> None:
    url = await sign_in_at_provider(await sso.start(), sso.redirect_uri, "alice")
    cookie = sso.flow_cookie()
    assert (await sso.callback(url)).status == 303
    sso.client.session.cookie_jar.clear()  # signed out: only the replay could sign in
    replay = await sso.callback(url, cookie=cookie)
    assert replay.status == 400
    assert "already completed" in await replay.text()
    assert (await sso.client.get("/api/auth/me")).status == 401


async def test_a_forged_or_missing_flow_cookie_is_refused(sso: Sso) -> None:
    url = await sign_in_at_provider(await sso.start(), sso.redirect_uri, "alice")
    forged = await sso.callback(url, cookie="gAAAAAforged")
    assert forged.status == 400
    assert "not valid" in await forged.text()
    sso.client.session.cookie_jar.clear()
    missing = await sso.callback(url)
    assert missing.status == 400
    assert "no sign-in in progress" in await missing.text()


async def test_the_pkce_verifier_and_the_nonce_are_checked(sso: Sso) -> None:
    oidc = sso.client.app[OIDC_KEY]
    # A verifier other than the one the challenge was made from: the provider refuses.
    url = await sign_in_at_provider(await sso.start(), sso.redirect_uri, "alice")
    flow = oidc.open(sso.flow_cookie())
    wrong = oidc.seal(dataclasses.replace(flow, verifier="v" * 64))
    r = await sso.callback(url, cookie=wrong)
    assert r.status == 400
    assert "refused the authorization code (invalid_grant)" in await r.text()
    # A nonce other than the one sent: the ID token does not verify.
    url = await sign_in_at_provider(await sso.start(), sso.redirect_uri, "alice")
    flow = oidc.open(sso.flow_cookie())
    wrong = oidc.seal(dataclasses.replace(flow, nonce="n" * 43))
    r = await sso.callback(url, cookie=wrong)
    assert r.status == 400
    assert "ID token does not verify" in await r.text()
    assert (await sso.client.get("/api/auth/me")).status == 401


async def test_groups_from_the_userinfo_endpoint(aiohttp_client, archnest_settings) -> None:  # type: ignore[no-untyped-def]
    async for sso in _sso(aiohttp_client, archnest_settings, groups_in="userinfo"):
        r = await sso.sign_in("alice")
        assert r.status == 303
        assert (await (await sso.client.get("/api/auth/me")).json())["role"] == "admin"


async def test_password_login_off(aiohttp_client, archnest_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    archnest_settings.password_login = False
    async for sso in _sso(aiohttp_client, archnest_settings):
        client = sso.client
        page = await (await client.get("/login")).text()
        assert 'action="/login"' not in page and "Sign in with Test IdP" in page
        body = {"username": "admin", "password": ADMIN_PASSWORD}
        r = await client.post("/api/auth/login", json=body)
        assert r.status == 503
        assert (await r.json())["error"]["code"] == "password_login_disabled"
        base = str(client.make_url("")).rstrip("/")
        form = await client.post("/login", data=body, headers={"Origin": base})
        assert form.status == 503 and "turned off" in await form.text()
        assert (await client.get("/api/auth/me")).status == 401
        # API tokens still work; single sign-on too.
        token = await create_token(client.app[DB_KEY], "admin", "script")
        me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status == 200
        assert (await sso.sign_in("alice")).status == 303
        assert (await (await client.get("/api/auth/me")).json())["username"] == "alice"


async def test_routes_answer_503_when_not_configured(archnest_client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/auth/oidc/login", "/auth/oidc/callback"):
        r = await archnest_client.get(path, allow_redirects=False)
        assert r.status == 503
        assert (await r.json())["error"]["code"] == "feature_disabled"
    page = await (await archnest_client.get("/login")).text()
    assert "Sign in with" not in page and 'action="/login"' in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"oidc_issuer": "https://idp.example"}, "ARCHNEST_OIDC_CLIENT_ID"),
        ({"oidc_issuer": "idp.example", "oidc_client_id": "a"}, "http(s) URL"),
        ({"trusted_header_auth": True}, "ARCHNEST_TRUSTED_PROXIES"),
        ({"oidc_issuer": "https://idp.example", "oidc_client_id": "a"}, "GROUPS"),
    ],
)
def test_half_configured_sign_on_stops_startup(changes: dict, message: str) -> None:
    settings = Settings(**changes)
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings.check_sso()


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "ARCHNEST_OIDC_ISSUER": "https://idp.example/application/o/archnest/",
            "ARCHNEST_OIDC_CLIENT_ID": "archnest",
            "ARCHNEST_OIDC_ADMIN_GROUPS": "ops, admins,",
            "ARCHNEST_OIDC_VIEWER_GROUPS": "staff",
            "ARCHNEST_PASSWORD_LOGIN": "0",
        }
    )
    assert settings.oidc_issuer == "https://idp.example/application/o/archnest"
    assert settings.oidc_admin_groups == ("ops", "admins")
    assert settings.oidc_viewer_groups == ("staff",)
    assert settings.oidc_scopes == "openid profile email groups"
    assert settings.oidc_groups_claim == "groups"
    assert settings.oidc_name == "single sign-on"
    assert settings.password_login is False and settings.trusted_header_auth is False
    assert "s3cr3t-value" not in repr(Settings(oidc_client_secret="s3cr3t-value"))


def test_the_replay_guard_is_bounded() -> None:
    guard = ReplayGuard(max_entries=3)
    later = time.time() + 600
    assert all(guard.use(f"s{i}", later) for i in range(5))
    assert not guard.use("s4", later)  # a replay of a remembered state
    assert guard.use("s0", later)  # the oldest were dropped to stay within the bound


async def test_concurrent_first_sign_ins_make_one_user(archnest_client) -> None:  # type: ignore[no-untyped-def]
    settings = archnest_client.app[SETTINGS_KEY]
    settings.oidc_admin_groups = ("archnest-admins",)
    db = archnest_client.app[DB_KEY]
    users = await asyncio.gather(
        *(sign_in_external(db, "zoe", ["archnest-admins"], settings) for _ in range(5))
    )
    assert {u.id for u in users} == {users[0].id}
