"""Fixtures for the Engine API source: engines registered over each transport of the
test environment's real dockerd (unix socket, plain TCP, mutual TLS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.testenv import TestEnv

KINDS = ("unix", "tcp", "tls")


def engine_body(env: TestEnv, kind: str, name: str | None = None) -> dict[str, Any]:
    """The POST /api/docker/hosts body reaching the test dockerd over ``kind``."""
    if kind == "unix":
        return {"name": name or "unix-engine", "url": env.docker_unix_url}
    if kind == "tcp":
        return {"name": name or "tcp-engine", "url": env.docker_tcp_url}
    return {
        "name": name or "tls-engine",
        "url": env.docker_tls_url,
        "tls": {"ca": env.tls.ca_pem, "cert": env.tls.cert_pem, "key": env.tls.key_pem},
    }


async def add_engine(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> int:
    resp = await client.post("/api/docker/hosts", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def engine_id(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv, kind: str
) -> int:
    """An engine of the parametrised transport, registered through the API."""
    return await add_engine(archnest_client, admin_headers, engine_body(testenv_docker, kind))


def inspect(env: TestEnv, ref: str) -> dict[str, Any]:
    return json.loads(env.docker("inspect", ref))[0]


def state_of(env: TestEnv, ref: str) -> str:
    return env.docker("inspect", "-f", "{{.State.Status}}", ref)
