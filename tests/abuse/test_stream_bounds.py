"""Bounds on live streams: over a bound a 429 at once, and the host stays usable."""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from archnest.keys import STREAMS_KEY
from archnest.ssh import SSH_POOL_KEY
from archnest.streams import StreamLimits

from tests.abuse.test_stream_release import (
    CHATTY,
    QUIET,
    _host_still_works,
    _settle,
    _ssh_docker_target,
)
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv

# The subject is streams and processes (descriptors, channels, signals), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


@pytest.fixture
def archnest_settings(archnest_settings):  # type: ignore[no-untyped-def]
    archnest_settings.max_follows_per_host = 3
    archnest_settings.max_follows_per_user = 4
    archnest_settings.max_terminals_per_user = 2
    return archnest_settings


async def _open_follows(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int
) -> list[aiohttp.ClientResponse]:
    out = []
    for _ in range(n):
        resp = await http.get(url, headers=headers)
        assert resp.status == 200, await resp.text()
        await resp.content.readline()
        out.append(resp)
    return out


async def test_full_follow_bound_refuses_fast_and_the_host_still_works(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    env = testenv_docker
    engine = await add_engine(archnest_client, admin_headers, engine_body(env, "unix"))
    other = await add_engine(archnest_client, admin_headers, engine_body(env, "tcp"))
    env.run_container("quiet", QUIET)
    base = f"/api/hosts/docker:{engine}"
    url = str(archnest_client.make_url(f"{base}/containers/quiet/logs?follow=1"))
    async with aiohttp.ClientSession() as http:
        held = await _open_follows(http, url, admin_headers, 3)
        try:
            # The host's bound (3) is full: a 429 at once, for anyone, with Retry-After.
            for headers in (admin_headers, viewer_headers):
                r = await http.get(url, headers=headers)
                assert r.status == 429
                assert (await r.json())["error"]["code"] == "too_many_follows"
                assert int(r.headers["Retry-After"]) >= 1
            # The user's bound (4) counts across hosts.
            other_url = url.replace(f"docker:{engine}", f"docker:{other}")
            held += await _open_follows(http, other_url, admin_headers, 1)
            r = await http.get(other_url, headers=admin_headers)
            assert r.status == 429 and "you already have 4" in (await r.json())["error"]["message"]
            # Everything else on the host answers normally meanwhile.
            await _host_still_works(archnest_client, admin_headers, base, "quiet")
        finally:
            for resp in held:
                resp.close()
        streams = archnest_client.app[STREAMS_KEY]
        assert await _settle(lambda: streams.count("follow") == 0)
        r = await http.get(url, headers=viewer_headers)
        assert r.status == 200
        r.close()


async def test_full_ssh_stream_channels_refuse_fast_and_the_host_still_works(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    env = testenv_docker
    # Above the pool's channel bound, so that one is what refuses.
    archnest_client.app[STREAMS_KEY].limits = StreamLimits(follows_per_user=50, follows_per_host=50)
    target = await _ssh_docker_target(archnest_client, admin_headers, env)
    env.run_container("quiet", QUIET)
    base = f"/api/hosts/ssh:{target}"
    pool = archnest_client.app[SSH_POOL_KEY]
    url = str(archnest_client.make_url(f"{base}/containers/quiet/logs?follow=1"))
    async with aiohttp.ClientSession() as http:
        held = await _open_follows(http, url, admin_headers, pool.max_streams)
        try:
            r = await http.get(url, headers=admin_headers)
            assert r.status == 429, await r.text()
            assert (await r.json())["error"]["code"] == "ssh_channels_busy"
            await _host_still_works(archnest_client, admin_headers, base, "quiet")
        finally:
            for resp in held:
                resp.close()
    assert await _settle(lambda: pool.connection_info(target)["streams"] == 0)


async def test_terminal_bound_and_plain_get_starts_nothing(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    env = testenv_docker
    engine = await add_engine(archnest_client, admin_headers, engine_body(env, "unix"))
    env.run_container("shell", QUIET)
    url = f"/api/exec?host=docker:{engine}&container=shell&cmd=sh"

    def shells() -> list[str]:
        rows = env.docker("top", "shell", "-o", "pid,args").splitlines()[1:]
        return [r for r in rows if "/bin/sh" in r]

    # A plain GET (no upgrade) is refused before anything starts in the container.
    r = await archnest_client.get(url, headers=admin_headers)
    assert r.status == 400 and (await r.json())["error"]["code"] == "websocket_required"
    await asyncio.sleep(0.5)
    assert shells() == []

    sockets = [await archnest_client.ws_connect(url, headers=admin_headers) for _ in range(2)]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await archnest_client.ws_connect(url, headers=admin_headers)
        assert info.value.status == 429
    finally:
        for ws in sockets:
            await ws.close()
    assert await _settle(lambda: shells() == [])
    ws = await archnest_client.ws_connect(url, headers=admin_headers)
    await ws.close()


async def test_exec_errors_after_the_upgrade_close_with_the_status(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    env = testenv_docker
    engine = await add_engine(archnest_client, admin_headers, engine_body(env, "unix"))
    stopped = env.run_container("stopped", ["true"])
    env.docker("wait", stopped)
    for name, status in (("stopped", 409), ("ghost", 404)):
        ws = await archnest_client.ws_connect(
            f"/api/exec?host=docker:{engine}&container={name}&cmd=sh", headers=admin_headers
        )
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4000 + status, (ws.close_code, msg.extra)
        assert msg.extra  # the reason says why


@pytest.fixture
def tight_sshd(testenv: TestEnv):  # type: ignore[no-untyped-def]
    """A second sshd on the same host whose MaxSessions (3) is below what the pool
    assumes, so the server refuses channels the pool thinks it may open."""
    from pathlib import Path

    from tests.testenv import sshd
    from tests.testenv.procs import stop_group

    base = Path(testenv.tmpdir)
    name = f"tight{secrets.token_hex(3)}"
    endpoint = sshd.start_sshd(
        base / "ssh", name, testenv.docker_socket, base / "logs", max_sessions=3
    )
    try:
        yield endpoint
    finally:
        stop_group(endpoint.pid, grace=5)


async def test_a_refused_channel_fails_one_request_and_keeps_the_connection(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv_docker: TestEnv,
    tight_sshd,  # type: ignore[no-untyped-def]
) -> None:
    env = testenv_docker
    archnest_client.app[STREAMS_KEY].limits = StreamLimits(follows_per_user=50, follows_per_host=50)
    body = target_payload(env, tight_sshd, "key", name="tight", docker=True)
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == 201, await r.text()
    target = (await r.json())["id"]
    pool = archnest_client.app[SSH_POOL_KEY]
    assert pool.max_streams > 3  # the pool believes it may open more than sshd allows
    env.run_container("chatty", CHATTY)
    base = f"/api/hosts/ssh:{target}"
    r = await archnest_client.get(f"{base}/containers", headers=admin_headers)
    assert r.status == 200, await r.text()

    url = str(archnest_client.make_url(f"{base}/containers/chatty/logs?follow=1&tail=1"))
    held: list[aiohttp.ClientResponse] = []
    async with aiohttp.ClientSession() as http:
        try:
            refused = None
            for _ in range(6):
                resp = await http.get(url, headers=admin_headers)
                if resp.status != 200:
                    refused = resp
                    break
                await resp.content.readline()
                held.append(resp)
            assert refused is not None, "sshd never refused a channel"
            assert refused.status == 502, await refused.text()
            assert (await refused.json())["error"]["code"] == "ssh_channel_refused"
            # The follows already open go on, on the same connection.
            assert held, "no follow was open before the refusal"
            for resp in held:
                line = await asyncio.wait_for(_next_data(resp), 10)
                assert "tick" in line
            assert pool.connection_info(target)["connects"] == 1
        finally:
            for resp in held:
                resp.close()
    assert await _settle(lambda: pool.connection_info(target)["streams"] == 0)
    r = await archnest_client.get(f"{base}/containers", headers=admin_headers)
    assert r.status == 200, await r.text()
    assert pool.connection_info(target)["connects"] == 1


async def _next_data(resp: aiohttp.ClientResponse) -> str:
    while True:
        line = (await resp.content.readline()).decode()
        if not line:
            raise AssertionError("stream ended")
        if line.startswith("data:"):
            return line
