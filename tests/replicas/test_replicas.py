"""Two replicas of ``archnest serve`` on one PostgreSQL database behind HAProxy
(round-robin), as docs/operations.md describes: a session made through one works on
the other, an action through one shows on the other, the event stream and the exec
WebSocket pass the balancer, a killed replica leaves the other serving (clients
reconnect), the stats collector's leadership moves to the survivor, and a revoked token
is refused everywhere within the credential cache's bound.

Real parts only: two app processes, HAProxy from Debian, the test PostgreSQL and
dockerd (tests/testenv)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.testenv import TestEnv
from tests.testenv.haproxy import haproxy
from tests.testenv.serve import PASSWORD, USER, ServedApp

# The credential cache's bound (core/users.py CredentialCache ttl) plus margin for a
# loaded machine: a change on one replica is seen on the other within it.
CACHE_BOUND = 5.0
MARGIN = 3.0


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def _wait_up(http: aiohttp.ClientSession, base: str, replicas: set[str]) -> None:
    """Until the balancer has sent requests to each of ``replicas``."""
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while seen < replicas:
        assert time.monotonic() < deadline, f"balancer reached only {seen}"
        try:
            async with http.get(base + "/healthz") as r:
                if r.status == 200:
                    seen.add(r.headers.get("X-Replica", ""))
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)


@asynccontextmanager
async def _session(base: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser-like client of ``base``: cookies (on an IP address), same Origin."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, headers={"Origin": base}) as http:
        yield http


async def _json(r: aiohttp.ClientResponse) -> Any:
    text = await r.text()
    try:
        return json.loads(text)
    except ValueError:
        return text


@pytest.fixture
def replica_env(testenv: TestEnv, testenv_pg_url: str) -> dict[str, str]:
    return {
        "ARCHNEST_DATABASE_URL": testenv_pg_url,
        "ARCHNEST_SECRET_KEY": "replicas-share-this-secret-key",
        "ARCHNEST_STATS_INTERVAL": "1",
        "ARCHNEST_HOST_TIMEOUT": "10",
    }


async def _samples(testenv_pg_url: str, container: str) -> int:
    import asyncpg  # the test PostgreSQL, read directly: what the replicas wrote

    url = testenv_pg_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM container_stats WHERE name = $1 AND tier = 0", container
        )
    finally:
        await conn.close()


async def test_two_replicas_behind_haproxy(
    testenv: TestEnv, replica_env: dict[str, str], testenv_pg_url: str, tmp_path: Path
) -> None:
    name = f"rep-{os.urandom(3).hex()}"
    testenv.run_container(name, ["sleep", "3600"])
    a = await ServedApp(
        replica_env, data_dir=str(tmp_path / "a"), log_path=tmp_path / "a.log"
    ).__aenter__()
    b: ServedApp | None = None
    try:
        admin = a.headers
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                a.base + "/api/docker/hosts",
                json={"name": "engine", "url": testenv.docker_unix_url},
                headers=admin,
            )
            assert r.status == 201, await _json(r)
            host = f"docker:{(await r.json())['id']}"
            # Replica A alone: it takes the stats leadership and samples the container.
            deadline = time.monotonic() + 30
            while await _samples(testenv_pg_url, name) < 2:
                async with http.get(a.base + f"/api/containers?host={host}", headers=admin):
                    pass  # looking at the host starts its watcher (and the sampling)
                assert time.monotonic() < deadline, "replica A never sampled"
                await asyncio.sleep(0.5)

        b = ServedApp(
            replica_env, data_dir=str(tmp_path / "b"), log_path=tmp_path / "b.log", prepare=False
        )
        await b.__aenter__()
        b.headers = admin
        with haproxy(tmp_path, {"a": _port(a.base), "b": _port(b.base)}) as lb:
            async with _session(lb) as browser:
                await _wait_up(browser, lb, {"a", "b"})
                # Sign in through the balancer; the session works on both replicas.
                r = await browser.post(
                    lb + "/api/auth/login", json={"username": USER, "password": PASSWORD}
                )
                assert r.status == 200, await _json(r)
                served = set()
                for _ in range(6):
                    async with browser.get(lb + "/api/hosts") as r:
                        assert r.status == 200, await _json(r)
                        served.add(r.headers["X-Replica"])
                assert served == {"a", "b"}, served
                cookie = {c.key: c.value for c in browser.cookie_jar}

                # Act through one replica directly, see it through the other.
                async with aiohttp.ClientSession(
                    cookies=cookie, headers={"Origin": b.base}
                ) as on_b:
                    r = await on_b.post(b.base + f"/api/hosts/{host}/containers/{name}/pause")
                    assert r.status == 200, await _json(r)
                async with aiohttp.ClientSession() as http:
                    deadline = time.monotonic() + 5
                    while True:
                        async with http.get(
                            a.base + f"/api/hosts/{host}/containers/{name}", headers=admin
                        ) as r:
                            if (await r.json())["state"] == "paused":
                                break
                        assert time.monotonic() < deadline, "A never saw the pause made on B"
                        await asyncio.sleep(0.2)

                # The event stream through the balancer: a change arrives within 2 s.
                events = await browser.get(lb + "/api/events")
                assert events.status == 200
                testenv.docker("unpause", name)
                started = time.monotonic()
                got = await _next_container_event(events, name, "unpause", timeout=5)
                assert got["state"] == "running"
                assert time.monotonic() - started < 2.0 + MARGIN

                # A terminal through the balancer (WebSocket upgrade passes HAProxy).
                ws = await browser.ws_connect(lb + f"/api/exec?host={host}&container={name}&cmd=sh")
                await ws.send_bytes(b"echo rep''lica\n")
                seen = ""
                while "\r\nreplica\r\n" not in seen:
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    assert msg.type == aiohttp.WSMsgType.BINARY, msg
                    seen += msg.data.decode(errors="replace")
                await ws.close()

                # A token revoked on B is refused on A within the cache's bound.
                async with aiohttp.ClientSession() as http:
                    r = await http.post(b.base + "/api/tokens", json={"name": "rep"}, headers=admin)
                    assert r.status == 201, await _json(r)
                    made = await r.json()
                    bearer = {"Authorization": f"Bearer {made['token']}"}
                    async with http.get(a.base + "/api/hosts", headers=bearer) as r:
                        assert r.status == 200  # used on A: now in A's credential cache
                    r = await http.delete(b.base + f"/api/tokens/{made['id']}", headers=admin)
                    assert r.status in (200, 204), await _json(r)
                    revoked = time.monotonic()
                    while True:
                        async with http.get(a.base + "/api/hosts", headers=bearer) as r:
                            if r.status == 401:
                                break
                        assert time.monotonic() - revoked < CACHE_BOUND + MARGIN
                        await asyncio.sleep(0.2)

                # Kill A (the stats leader) under load: B keeps serving through the
                # balancer, the stream's client reconnects, B takes the leadership.
                load = asyncio.create_task(_load(browser, lb, f"/api/containers?host={host}", 8.0))
                await asyncio.sleep(1.0)
                a.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
                killed = time.monotonic()
                results = await load
                after = [ok for t, ok in results if t > killed + 2.0]
                assert after and all(after), f"failures after the kill: {after.count(False)}"
                assert sum(1 for _, ok in results if not ok) <= 3, results
                events.close()
                events = await browser.get(lb + "/api/events")  # the reconnect: on B
                assert events.status == 200
                testenv.docker("pause", name)
                got = await _next_container_event(events, name, "pause", timeout=5)
                assert got["state"] == "paused"
                events.close()
                testenv.docker("unpause", name)
                before = await _samples(testenv_pg_url, name)
                deadline = time.monotonic() + 20
                while await _samples(testenv_pg_url, name) < before + 2:
                    assert time.monotonic() < deadline, "B did not take over the sampling"
                    await asyncio.sleep(0.5)
    finally:
        if b is not None:
            await b.__aexit__()
        await a.__aexit__()
        testenv.docker("rm", "-f", name, check=False)


async def _next_container_event(
    resp: aiohttp.ClientResponse, name: str, action: str, timeout: float
) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        event = ""
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "container":
                data = json.loads(line[6:])
                if data.get("name") == name and data.get("action") == action:
                    return data
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(read(), timeout)


async def _load(
    http: aiohttp.ClientSession, base: str, path: str, seconds: float
) -> list[tuple[float, bool]]:
    """GETs one after another for ``seconds``: (when, answered 200)."""
    out: list[tuple[float, bool]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            async with http.get(base + path, timeout=aiohttp.ClientTimeout(total=5)) as r:
                await r.read()
                out.append((time.monotonic(), r.status == 200))
        except (aiohttp.ClientError, TimeoutError):
            out.append((time.monotonic(), False))
        await asyncio.sleep(0.05)
    return out
