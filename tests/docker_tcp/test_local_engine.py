"""The local Docker socket: added as ``local`` on first start, removal remembered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings, create_app

from tests.testenv import TestEnv


@pytest.fixture
def archnest_settings(archnest_settings: Settings, testenv: TestEnv) -> Settings:
    # Stand the test dockerd's socket in for /var/run/docker.sock.
    archnest_settings.plugin_env["ARCHNEST_ADD_LOCAL_DOCKER"] = "1"
    archnest_settings.plugin_env["ARCHNEST_LOCAL_DOCKER_SOCKET"] = testenv.docker_socket
    return archnest_settings


async def test_local_socket_is_added_once_and_stays_removed(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    archnest_client: TestClient,
    archnest_settings: Settings,
    admin_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    resp = await archnest_client.get("/api/docker/hosts", headers=admin_headers)
    (local,) = await resp.json()
    assert local["name"] == "local"
    assert local["url"] == f"unix://{testenv_docker.docker_socket}"
    resp = await archnest_client.get(
        f"/api/docker/hosts/{local['id']}/containers", headers=admin_headers
    )
    assert resp.status == 200

    # A restart does not add it twice.
    again = await aiohttp_client(create_app(archnest_settings))
    resp = await again.get("/api/docker/hosts", headers=admin_headers)
    assert [e["name"] for e in await resp.json()] == ["local"]

    # Removed by the admin, it is not re-added on the next start.
    resp = await again.delete(f"/api/docker/hosts/{local['id']}", headers=admin_headers)
    assert resp.status == 200
    third = await aiohttp_client(create_app(archnest_settings))
    resp = await third.get("/api/docker/hosts", headers=admin_headers)
    assert await resp.json() == []
