"""Streams opened and dropped leave nothing behind, and their bounds keep a host usable.

Against the real dockerd and sshd of the test environment: a follow that the client
drops must give back its engine connection or SSH channel (and end the remote
``docker logs -f``); over a bound the answer is a 429 at once, and the rest of the host
(list, inspect, actions) keeps working.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings
from archnest.keys import STREAMS_KEY
from archnest.ssh import SSH_POOL_KEY

from tests.abuse.resources import fd_count, fd_targets, remote_commands, tcp_connections_to
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv

# The subject is streams and processes (descriptors, channels, signals), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    # What these tests count (descriptors, SSH streams, engine connections) is what the
    # dropped follows leave; the live state's own subscriptions and database reads,
    # started in the background at their own moments, would only blur that count.
    archnest_settings.live = False
    return archnest_settings


CHATTY = ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
QUIET = ["sleep", "3600"]


async def _drop_follows(client: TestClient, headers: dict[str, str], path: str, n: int) -> None:
    """Open ``n`` follows at once, read their first event, then drop every connection."""
    url = str(client.make_url(path))
    async with aiohttp.ClientSession() as http:
        responses = await asyncio.gather(*(http.get(url, headers=headers) for _ in range(n)))
        try:
            for resp in responses:
                assert resp.status == 200, await resp.text()
                assert (await resp.content.readline()).startswith(b": connected")
        finally:
            for resp in responses:
                resp.close()  # the client goes away mid-stream


async def _settle(check, timeout: float = 10.0) -> Any:  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it is truthy (the server notices a gone client on its
    next write); return its last value."""
    value = None
    for _ in range(int(timeout / 0.1)):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    return value


async def _host_still_works(
    client: TestClient, headers: dict[str, str], base: str, name: str
) -> None:
    r = await client.get(f"{base}/containers", headers=headers)
    assert r.status == 200, await r.text()
    assert name in [c["name"] for c in await r.json()]
    r = await client.get(f"{base}/containers/{name}", headers=headers)
    assert r.status == 200, await r.text()
    r = await client.post(f"{base}/containers/{name}/pause", headers=headers)
    assert r.status == 200, await r.text()
    r = await client.post(f"{base}/containers/{name}/unpause", headers=headers)
    assert r.status == 200, await r.text()


async def test_200_dropped_docker_follows_leave_no_connection(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    env = testenv_docker
    # Plain TCP, so the app's connections to the engine can be counted from /proc.
    engine = await add_engine(archnest_client, admin_headers, engine_body(env, "tcp"))
    env.run_container("chatty", CHATTY)
    env.run_container("quiet", QUIET)
    base = f"/api/hosts/docker:{engine}"
    await _host_still_works(archnest_client, admin_headers, base, "quiet")
    # A first wave at the same concurrency brings the database and engine pools to the
    # size they keep; what stays open after that is what the follows leave behind.
    await _drop_follows(
        archnest_client, admin_headers, f"{base}/containers/quiet/logs?follow=1&tail=1", 10
    )
    streams = archnest_client.app[STREAMS_KEY]
    assert await _settle(lambda: streams.count("follow") == 0)
    fds_before, targets_before = fd_count(), fd_targets()
    conns_before = tcp_connections_to(env.docker_tcp_port)

    # 200 in waves of 10 (the per-user bound is 20), a chatty and a quiet container: a
    # quiet follow is noticed only by its keep-alive, a chatty one by its next line.
    for wave in range(20):
        name = "chatty" if wave % 2 else "quiet"
        await _drop_follows(
            archnest_client, admin_headers, f"{base}/containers/{name}/logs?follow=1&tail=1", 10
        )
    assert await _settle(lambda: streams.count("follow") == 0)
    settled = await _settle(lambda: tcp_connections_to(env.docker_tcp_port) <= conns_before)
    assert settled, (tcp_connections_to(env.docker_tcp_port), conns_before)
    assert fd_count() <= fds_before + 2, _fd_growth(targets_before)
    await _host_still_works(archnest_client, admin_headers, base, "quiet")


async def _ssh_docker_target(client: TestClient, headers: dict[str, str], env: TestEnv) -> int:
    body = target_payload(env, env.ssh_target, "key", name="abuse-ssh", docker=True)
    r = await client.post("/api/ssh/targets", json=body, headers=headers)
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def test_30_dropped_ssh_follows_leave_no_channel_or_process(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    env = testenv_docker
    target = await _ssh_docker_target(archnest_client, admin_headers, env)
    env.run_container("chatty", CHATTY)
    env.run_container("quiet", QUIET)
    base = f"/api/hosts/ssh:{target}"
    await _host_still_works(archnest_client, admin_headers, base, "quiet")
    pool = archnest_client.app[SSH_POOL_KEY]
    await _drop_follows(
        archnest_client, admin_headers, f"{base}/containers/quiet/logs?follow=1&tail=1", 2
    )
    assert await _settle(lambda: pool.connection_info(target)["streams"] == 0)
    fds_before, targets_before = fd_count(), fd_targets()
    sshd = env.ssh_target.pid

    # Waves as large as the pool's stream channels allow (the rest are kept for lists).
    wave = pool.max_streams
    for i in range(0, 30, wave):
        name = "chatty" if (i // wave) % 2 else "quiet"
        path = f"{base}/containers/{name}/logs?follow=1&tail=1"
        await _drop_follows(archnest_client, admin_headers, path, min(wave, 30 - i))
        assert await _settle(lambda: pool.connection_info(target)["streams"] == 0)

    assert await _settle(lambda: not remote_commands(sshd, "docker logs")), remote_commands(
        sshd, "docker logs"
    )
    info = pool.connection_info(target)
    assert info["connects"] == 1, info  # one connection throughout: nothing was torn down
    assert fd_count() <= fds_before + 2, _fd_growth(targets_before)
    await _host_still_works(archnest_client, admin_headers, base, "quiet")


def _fd_growth(before: list[str]) -> str:
    after = fd_targets()
    grown = [t for t in after if after.count(t) > before.count(t)]
    return f"{len(before)} -> {len(after)} descriptors; more of: {sorted(set(grown))}"
