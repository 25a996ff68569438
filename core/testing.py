"""Pytest fixtures for testing ArchNest and its plugins (loaded as a pytest plugin).

``ARCHNEST_TEST_DATABASE_URL`` (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``)
runs every test on a fresh PostgreSQL database created from that server; otherwise each
test gets its own SQLite file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from .app import create_app
from .auth import create_token, create_user
from .keys import DB_KEY
from .settings import Settings

ADMIN_PASSWORD = "admin-password-1"


async def _create_pg_database(server_url: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    import asyncpg

    name = "t_" + uuid.uuid4().hex[:16]
    raw = server_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(raw)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
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


@pytest.fixture
async def archnest_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL for one test."""
    server = os.environ.get("ARCHNEST_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite+aiosqlite:///{tmp_path / 'archnest.db'}"
        return
    url, drop = await _create_pg_database(server)
    try:
        yield url
    finally:
        await drop()


@pytest.fixture
def archnest_settings(tmp_path: Path, archnest_database_url: str) -> Settings:
    """Settings for a throwaway app: own data dir, fresh database, known admin password."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=archnest_database_url,
        secret_key="test-secret-key-not-for-production",
        admin_password=ADMIN_PASSWORD,
        add_local_docker=False,
        host_timeout=5.0,
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
    "admin_headers",
    "archnest_app",
    "archnest_client",
    "archnest_database_url",
    "archnest_settings",
    "make_user_headers",
    "viewer_headers",
]
