"""SIGTERM with everything in flight: `archnest serve` exits within 10 s and leaves
nothing running on the hosts (no shells in containers, no remote docker CLI)."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.abuse.resources import remote_commands
from tests.abuse.test_stream_release import CHATTY, QUIET
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv
from tests.testenv.serve import ServedApp

# The subject is streams and processes (descriptors, channels, signals), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServedApp]:
    async with ServedApp({"ARCHNEST_HOST_TIMEOUT": "10"}, data_dir=str(tmp_path / "d")) as app:
        yield app


async def test_sigterm_with_streams_terminals_and_logins_in_flight(
    served: ServedApp, testenv_docker: TestEnv
) -> None:
    proc, base, headers = served.proc, served.base, served.headers
    assert proc is not None
    env = testenv_docker
    env.run_container("chatty", CHATTY)
    env.run_container("shell", QUIET)
    async with aiohttp.ClientSession(base_url=base) as http:
        r = await http.post(
            "/api/docker/hosts",
            json={"name": "local", "url": env.docker_unix_url},
            headers=headers,
        )
        assert r.status == 201, await r.text()
        docker_id = f"docker:{(await r.json())['id']}"
        body = target_payload(env, env.ssh_target, "key", name="ssh-host", docker=True)
        r = await http.post("/api/ssh/targets", json=body, headers=headers)
        assert r.status == 201, await r.text()
        ssh_id = f"ssh:{(await r.json())['id']}"

        follows = []
        for host in (docker_id, ssh_id):
            for name in ("chatty", "shell"):
                resp = await http.get(
                    f"/api/hosts/{host}/containers/{name}/logs?follow=1", headers=headers
                )
                assert resp.status == 200, await resp.text()
                await resp.content.readline()
                follows.append(resp)
        terminals = []
        for host in (docker_id, ssh_id):
            ws = await http.ws_connect(
                f"/api/exec?host={host}&container=shell&cmd=sh", headers=headers
            )
            await ws.send_str("echo rea''dy\n")
            await _read_until(ws, "ready")
            await ws.send_str("sleep 765\n")  # a foreground command must go too
            terminals.append(ws)
        assert _shells(env) != []
        # Bad logins in flight for admin, from many clients at once.
        logins = [
            asyncio.ensure_future(
                http.post(
                    "/api/auth/login",
                    json={"username": "admin", "password": secrets.token_hex(8)},
                )
            )
            for _ in range(30)
        ]
        await asyncio.sleep(0.2)

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None and time.monotonic() - started < 15:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        assert proc.poll() is not None, "archnest serve still running 15 s after SIGTERM"
        assert elapsed < 10, f"SIGTERM took {elapsed:.1f}s"

        await asyncio.gather(*logins, return_exceptions=True)
        for resp in follows:
            resp.close()
        for ws in terminals:
            await ws.close()

    # Nothing left running on the hosts: no shell or its command in the container, no
    # docker CLI (logs -f, exec) under the SSH server.
    for _ in range(50):
        leftovers = _shells(env) + remote_commands(env.ssh_target.pid, "docker ")
        if not leftovers:
            break
        await asyncio.sleep(0.1)
    assert _shells(env) == []
    assert remote_commands(env.ssh_target.pid, "docker ") == []


def _shells(env: TestEnv) -> list[str]:
    rows = env.docker("top", "shell", "-o", "pid,args").splitlines()[1:]
    return [r for r in rows if "/bin/sh" in r or "sleep 765" in r]


async def _read_until(ws: aiohttp.ClientWebSocketResponse, needle: str) -> None:
    seen = ""
    while needle not in seen:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            raise AssertionError(f"terminal closed before {needle!r}: {seen!r}")
        data = msg.data
        seen += data.decode(errors="replace") if isinstance(data, bytes) else data
