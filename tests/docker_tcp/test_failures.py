"""Failures: TLS material that must not work, and engines that are down or silent."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings

from tests.testenv import TestEnv

from .conftest import add_engine, engine_body

# The subject is the Engine API transport (unix, TCP, mutual TLS), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

TIMEOUT = 2.0


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.host_timeout = TIMEOUT
    return archnest_settings


async def _list_error(client: TestClient, headers: dict[str, str], engine_id: int) -> dict:
    resp = await client.get(f"/api/docker/hosts/{engine_id}/containers", headers=headers)
    assert resp.status in (502, 504), await resp.text()
    return (await resp.json())["error"]


@pytest.mark.parametrize(
    ("material", "expected"),
    [
        # The engine's certificate checked against an unrelated CA.
        ("wrong_ca", "not signed by the configured CA"),
        # Our client certificate from an unrelated CA: the engine refuses it.
        ("wrong_client_cert", "client certificate"),
        # Our client certificate from the right CA, but expired.
        ("expired_client_cert", "client certificate"),
    ],
)
async def test_bad_tls_material_fails_with_a_clear_error(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv_docker: TestEnv,
    material: str,
    expected: str,
) -> None:
    env = testenv_docker
    good, rogue, expired = env.tls, env.tls_rogue, env.tls_expired
    tls = {
        "wrong_ca": {"ca": rogue.ca_pem, "cert": good.cert_pem, "key": good.key_pem},
        "wrong_client_cert": {"ca": good.ca_pem, "cert": rogue.cert_pem, "key": rogue.key_pem},
        "expired_client_cert": {
            "ca": good.ca_pem,
            "cert": expired.cert_pem,
            "key": expired.key_pem,
        },
    }[material]
    engine_id = await add_engine(
        archnest_client,
        admin_headers,
        {"name": material, "url": env.docker_tls_url, "tls": tls},
    )
    error = await _list_error(archnest_client, admin_headers, engine_id)
    assert error["code"] == "engine_unreachable"
    assert error["message"].startswith(f"cannot connect to engine at {env.docker_tls_url}")
    assert expected in error["message"]
    if material == "expired_client_cert":
        assert "expired" in error["message"]

    resp = await archnest_client.get("/api/hosts", headers=admin_headers)
    (host,) = [h for h in await resp.json() if h["id"] == f"docker:{engine_id}"]
    assert host["status"] == "error"
    assert expected in host["error"]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


async def test_dead_engines_are_per_host_errors_within_the_timeout(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv_docker: TestEnv,
    silent_port: int,
    tmp_path,
) -> None:
    env = testenv_docker
    env.run_container("alive-1")
    dead_socket = tmp_path / "dead.sock"
    # A socket file nobody listens on any more (like a stopped dockerd leaves behind).
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(dead_socket))
    leftover.close()
    engines = {
        "good": engine_body(env, "unix", "good"),
        "refused": {"name": "refused", "url": f"tcp://127.0.0.1:{_closed_port()}"},
        "stale-socket": {"name": "stale-socket", "url": f"unix://{dead_socket}"},
        "no-socket": {"name": "no-socket", "url": f"unix://{tmp_path}/missing.sock"},
        "silent": {"name": "silent", "url": f"tcp://127.0.0.1:{silent_port}"},
    }
    ids = {n: await add_engine(archnest_client, admin_headers, b) for n, b in engines.items()}

    started = time.monotonic()
    resp = await archnest_client.get("/api/hosts", headers=admin_headers)
    elapsed = time.monotonic() - started
    assert resp.status == 200
    assert elapsed < TIMEOUT + 1.5, elapsed  # concurrent probes: one timeout, not four
    hosts = {h["name"]: h for h in await resp.json() if h["source"] == "docker"}
    assert hosts["good"]["status"] == "ok" and hosts["good"]["error"] is None
    assert "connection refused" in hosts["refused"]["error"]
    assert "connection refused" in hosts["stale-socket"]["error"]
    assert "no such socket" in hosts["no-socket"]["error"]
    assert "no answer within" in hosts["silent"]["error"]
    for name in ("refused", "stale-socket", "no-socket", "silent"):
        assert hosts[name]["status"] == "error"
        assert hosts[name]["error"].startswith(("cannot connect to engine at", "silent"))

    # The good engine still lists while the others fail, each with its own error.
    results = await asyncio.gather(
        *(
            archnest_client.get(f"/api/docker/hosts/{i}/containers", headers=admin_headers)
            for i in ids.values()
        )
    )
    status = dict(zip(ids, (r.status for r in results), strict=True))
    assert status == {
        "good": 200,
        "refused": 502,
        "stale-socket": 502,
        "no-socket": 502,
        "silent": 504,
    }
    assert [c["name"] for c in await results[0].json()] == ["alive-1"]
