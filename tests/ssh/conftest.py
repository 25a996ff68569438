"""Fixtures for the SSH transport and the docker_ssh source: a real app talking to the
test environment's sshd (target, jump1, jump2) and dockerd."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.testenv import SshEndpoint, TestEnv

TargetMaker = Callable[..., Awaitable[dict[str, Any]]]


def target_payload(env: TestEnv, endpoint: SshEndpoint, auth: str = "key", **extra: Any) -> dict:
    """A POST /api/ssh/targets body for one of the test sshd, with pinned host key."""
    m = env.ssh
    body: dict[str, Any] = {
        "name": f"{endpoint.name}-{auth}",
        "host": endpoint.host,
        "port": endpoint.port,
        "username": m.username,
        "auth": auth,
        "host_keys": [endpoint.host_key],
    }
    if auth == "key":
        body["private_key"] = m.private_key
    elif auth == "key-passphrase":
        body.update(auth="key", private_key=m.encrypted_private_key, passphrase=m.passphrase)
    elif auth == "password":
        body["password"] = m.password
    elif auth == "certificate":
        body.update(private_key=m.cert_private_key, certificate=m.certificate)
    body.update(extra)
    return body


@pytest.fixture
def make_target(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv: TestEnv
) -> TargetMaker:
    async def make(endpoint: SshEndpoint | None = None, auth: str = "key", **extra: Any) -> dict:
        body = target_payload(testenv, endpoint or testenv.ssh_target, auth, **extra)
        r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
        assert r.status == 201, await r.text()
        return await r.json()

    return make


@pytest.fixture
async def chain_target(
    make_target: TargetMaker, testenv: TestEnv
) -> Callable[..., Awaitable[dict]]:
    """A docker target reached through 0, 1 or 2 jump hosts (jump1, then jump2)."""

    async def make(hops: int, auth: str = "key") -> dict:
        jumps = []
        for endpoint in (testenv.ssh_jump1, testenv.ssh_jump2)[:hops]:
            jumps.append((await make_target(endpoint, "key", name=f"hop-{endpoint.name}"))["id"])
        return await make_target(
            testenv.ssh_target, auth, name=f"docker-{auth}-{hops}", jump=jumps, docker=True
        )

    return make
