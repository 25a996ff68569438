"""Pytest fixtures for testing ArchNest and its plugins (loaded as a pytest plugin).

``ARCHNEST_TEST_DATABASE_URL`` (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``)
runs every test on a fresh PostgreSQL database created from that server; otherwise each
test gets its own SQLite file.

Each test's database starts migrated: the migrations run once per test session into a
template (a SQLite file, a PostgreSQL template database) and every test gets a copy,
since running them for each test made up most of an app test's setup.
``archnest_empty_database_url`` is an empty one, for tests of the migrations themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from . import migrate, users
from .app import create_app
from .db import Database
from .keys import DB_KEY
from .plugins import build_plugin_manager
from .settings import Settings
from .users import create_token, create_user

ADMIN_PASSWORD = "admin-password-1"


async def create_pg_database(
    server_url: str, prefix: str = "t_", *, template: str | None = None
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Create a fresh database on ``server_url`` (a copy of the database ``template``
    when given); return its URL and a coroutine to drop it."""
    import asyncpg

    name = prefix + uuid.uuid4().hex[:16]
    raw = server_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(raw)
    try:
        # Both names are made here (a prefix and hex digits), never taken from input.
        copy_of = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{copy_of}')
    finally:
        await conn.close()
    base, _, _ = server_url.rpartition("/")

    async def drop() -> None:
        conn = await asyncpg.connect(raw)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return f"{base}/{name}", drop


# Passwords hashed at test cost: argon2id as in production, one pass over 1 MiB instead
# of three over 64 MiB (as Django's documentation advises for test suites). An app test
# hashes two or three passwords (the first admin, the users it makes), which at the
# production cost was a large share of its time. Hashes carry their parameters, so the
# production ones made elsewhere still verify. A test that needs the real cost (a full
# hashing queue) is marked ``production_password_hash``; an app in a child process
# always has it.
_TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "production_password_hash: hash passwords at the production argon2 cost"
    )


@pytest.fixture(autouse=True)
def _test_password_hash(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("production_password_hash") is None:
        monkeypatch.setattr(users, "_hasher", _TEST_HASHER)


@pytest.fixture
async def archnest_empty_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL for one test (tests of the migrations)."""
    server = os.environ.get("ARCHNEST_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite+aiosqlite:///{tmp_path / 'archnest.db'}"
        return
    url, drop = await create_pg_database(server)
    try:
        yield url
    finally:
        await drop()


@pytest.fixture
async def archnest_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database URL for one test, migrated to the heads of the installed plugins
    (a copy of this session's template); no users yet."""
    server = os.environ.get("ARCHNEST_TEST_DATABASE_URL")
    template = await _template(server or "")
    if not server:
        path = tmp_path / "archnest.db"
        shutil.copyfile(template, path)
        path.chmod(0o600)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url, drop = await create_pg_database(server, template=template)
    try:
        yield url
    finally:
        await drop()


# This session's migrated templates: SQLite file path, or PostgreSQL database name, by
# server URL ("" for SQLite), and how to remove each when the session ends.
_TEMPLATES: dict[str, str] = {}
_TEMPLATE_DROPS: list[Callable[[], Awaitable[None]]] = []


async def _template(server: str) -> str:
    if server in _TEMPLATES:
        return _TEMPLATES[server]
    if server:
        url, drop = await create_pg_database(server, prefix="tmpl_")
        name = url.rpartition("/")[2]
    else:
        folder = Path(tempfile.mkdtemp(prefix="archnest-template-"))
        name = str(folder / "archnest.db")
        url = f"sqlite+aiosqlite:///{name}"

        async def drop() -> None:
            shutil.rmtree(folder, ignore_errors=True)

    _TEMPLATE_DROPS.append(drop)
    db = Database(url)
    try:
        # The plugins every test app loads by default; a test's extra plugin gets its
        # own lineage applied on top when its app starts, as in production.
        await migrate.upgrade(db.engine, build_plugin_manager())
    finally:
        # No connection may stay open: PostgreSQL copies only an unused template.
        await db.dispose()
    _TEMPLATES[server] = name
    return name


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    for drop in _TEMPLATE_DROPS:
        # The PostgreSQL server may be gone already (its test environment torn down).
        with contextlib.suppress(Exception):
            asyncio.run(drop())
    _TEMPLATE_DROPS.clear()
    _TEMPLATES.clear()


@pytest.fixture
def archnest_settings(tmp_path: Path, archnest_database_url: str) -> Settings:
    """Settings for a throwaway app: own data dir, fresh database, known admin password.

    Plugin settings come from ``plugin_env``, never from the process environment; a
    throwaway app does not adopt the machine's own Docker socket.
    """
    return Settings(
        data_dir=tmp_path / "data",
        database_url=archnest_database_url,
        secret_key="test-secret-key-not-for-production",
        admin_password=ADMIN_PASSWORD,
        host_timeout=5.0,
        plugin_env={"ARCHNEST_ADD_LOCAL_DOCKER": "0"},
    )


@pytest.fixture
def archnest_app(archnest_settings: Settings) -> web.Application:
    return create_app(archnest_settings)


@pytest.fixture
async def archnest_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], archnest_app: web.Application
) -> TestClient:
    """A test client of the real app (started: migrated, sources open)."""
    return await aiohttp_client(archnest_app)


async def make_user_headers(
    client: TestClient, username: str, role: str, password: str = "password-12345"
) -> dict[str, str]:
    """Create a user and return ``Authorization`` headers with a fresh API token."""
    db = client.app[DB_KEY]
    await create_user(db, username, password, role)
    token = await create_token(db, username, "test")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin_headers(archnest_client: TestClient) -> dict[str, str]:
    return await make_user_headers(archnest_client, "alice", "admin")


@pytest.fixture
async def viewer_headers(archnest_client: TestClient) -> dict[str, str]:
    return await make_user_headers(archnest_client, "victor", "viewer")


__all__: list[Any] = [
    "ADMIN_PASSWORD",
    "PUBLIC_UNSAFE_ROUTES",
    "SELF_SERVICE_ROUTES",
    "admin_headers",
    "archnest_app",
    "archnest_client",
    "archnest_database_url",
    "archnest_empty_database_url",
    "archnest_settings",
    "check_route_protection",
    "create_pg_database",
    "make_user_headers",
    "viewer_headers",
]


# Unsafe routes that authenticate on their own (credentials in the body, or the agent's
# own token). Anything else unsafe must be admin-only.
PUBLIC_UNSAFE_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/login"),
        ("POST", "/logout"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/logout"),
        ("POST", "/api/agents/docker/report"),
    }
)
# Unsafe routes any signed-in user may call: they act only on the caller's own account
# (own password, own API tokens; ``@self_service``). Anything else unsafe is admin-only.
SELF_SERVICE_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/auth/password"),
        ("POST", "/api/tokens"),
        ("DELETE", "/api/tokens/{id}"),
    }
)


def _sample_path(resource: Any) -> str:
    info = resource.get_info()
    if "path" in info:
        return info["path"]
    formatter = info.get("formatter", "")
    import re

    # Fill every {placeholder} with a harmless valid value; auth runs before the handler.
    return re.sub(r"\{[^}]+\}", "x1", formatter)


async def check_route_protection(
    client: TestClient,
    viewer_headers: dict[str, str],
    allowed_public: frozenset[tuple[str, str]] = PUBLIC_UNSAFE_ROUTES,
    self_service: frozenset[tuple[str, str]] = SELF_SERVICE_ROUTES,
) -> list[str]:
    """Walk the router; return a line per route that breaks the policy (empty list: all
    protected):

    - an unsafe or WebSocket route must answer 401 to an anonymous request and 403 to a
      viewer, unless it is ``allowed_public`` (not checked) or ``self_service``;
    - a ``self_service`` route must answer 401 to an anonymous request and must not
      answer 403 to a viewer (the request carries no body: nothing is changed);
    - an ``@admin_only`` GET route, and every route of the Settings area (``/settings``
      and below: a page that forgot ``@admin_only``), must answer 401 to an anonymous
      request and 403 to a viewer.
    """
    from .auth import SAFE_METHODS, is_admin_only, is_websocket

    problems: list[str] = []
    origin = {"Origin": str(client.make_url("")).rstrip("/")}
    for route in client.app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        method = route.method.upper()
        ws = is_websocket(route.handler)
        if method == "HEAD":
            continue  # the GET beside it is checked
        info = resource.get_info()
        template = info.get("path") or info.get("formatter") or ""
        settings_area = template == "/settings" or template.startswith("/settings/")
        if method in SAFE_METHODS and not (ws or is_admin_only(route.handler) or settings_area):
            continue
        if method == "*":
            method = "POST"
        if (method, template) in allowed_public:
            continue
        path = _sample_path(resource)
        send_method = "GET" if ws else method
        anon = await client.request(send_method, path, headers=origin)
        if anon.status != 401:
            problems.append(f"{method} {template}: anonymous got {anon.status}, expected 401")
        viewer = await client.request(send_method, path, headers={**viewer_headers, **origin})
        if (method, template) in self_service:
            if viewer.status in (401, 403):
                problems.append(
                    f"{method} {template}: viewer got {viewer.status}, expected a self-service"
                    " answer (not 401/403)"
                )
        elif viewer.status != 403:
            problems.append(f"{method} {template}: viewer got {viewer.status}, expected 403")
    return problems
