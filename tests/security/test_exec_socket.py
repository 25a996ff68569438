"""The exec WebSocket: fixed command choice, admin + same origin, robust control frames."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import aiohttp
import pytest
from archnest import ExecSession, HostInfo, HostSource, create_app, hookimpl
from archnest.testing import make_user_headers

# The subject is the Engine API transport (unix, TCP, mutual TLS), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


class FakeSession(ExecSession):
    def __init__(self) -> None:
        self.out: asyncio.Queue[bytes] = asyncio.Queue()
        self.sizes: list[tuple[int, int]] = []
        self.closed = False

    async def read(self) -> bytes:
        return await self.out.get()

    async def write(self, data: bytes) -> None:
        await self.out.put(b"echo:" + data)

    async def resize(self, cols: int, rows: int) -> None:
        self.sizes.append((cols, rows))

    async def close(self) -> None:
        self.closed = True
        await self.out.put(b"")


class FakeSource(HostSource):
    name = "fake"

    def __init__(self) -> None:
        self.execs: list[tuple[str, str, list[str]]] = []
        self.sessions: list[FakeSession] = []

    async def list_hosts(self) -> list[HostInfo]:
        return [HostInfo(id="fake:1", source="fake", name="fake")]

    async def exec(self, key, ref, cmd, *, cols=80, rows=24):  # type: ignore[no-untyped-def]
        self.execs.append((key, ref, cmd))
        session = FakeSession()
        self.sessions.append(session)
        return session


@pytest.fixture
def fake_source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def archnest_app(archnest_settings, fake_source):  # type: ignore[no-untyped-def]
    @hookimpl
    def archnest_host_sources():  # type: ignore[no-untyped-def]
        return [fake_source]

    plugin = SimpleNamespace(
        __name__="fake_exec_source", archnest_host_sources=archnest_host_sources
    )
    return create_app(archnest_settings, extra_plugins=[plugin])


async def test_bad_resize_frames_do_not_kill_the_session(
    archnest_client, admin_headers, fake_source
):
    ws = await archnest_client.ws_connect(
        "/api/exec?host=fake:1&container=c1&cmd=sh", headers=admin_headers
    )
    for frame in (
        {"type": "resize", "cols": "wide", "rows": 3},
        {"type": "resize", "cols": None},
        {"type": "resize", "cols": 1e999, "rows": 1},
        {"type": "resize", "cols": [1], "rows": {}},
    ):
        await ws.send_str(json.dumps(frame).replace("Infinity", "1e999"))
    await ws.send_str(json.dumps({"type": "resize", "cols": 5000, "rows": 1}))
    await ws.send_bytes(b"id\n")
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b"echo:id\n"
    assert fake_source.sessions[0].sizes == [(1000, 5)]
    await ws.close()
    for _ in range(50):
        if fake_source.sessions[0].closed:
            break
        await asyncio.sleep(0.02)
    assert fake_source.sessions[0].closed


@pytest.mark.parametrize("cmd", ["zsh", "sh -c id", "/bin/sh", "sh;id", "$(id)", ""])
async def test_exec_command_is_a_fixed_choice(archnest_client, admin_headers, fake_source, cmd):
    resp = await archnest_client.get(
        "/api/exec", params={"host": "fake:1", "container": "c1", "cmd": cmd}, headers=admin_headers
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"
    assert fake_source.execs == []


async def test_exec_maps_choices_to_fixed_argv(archnest_client, admin_headers, fake_source):
    for name in ("sh", "bash", "ash"):
        ws = await archnest_client.ws_connect(
            f"/api/exec?host=fake:1&container=c1&cmd={name}", headers=admin_headers
        )
        await ws.close()
    assert [e[2] for e in fake_source.execs] == [["/bin/sh"], ["/bin/bash"], ["/bin/ash"]]


async def test_exec_socket_needs_admin_and_same_origin(archnest_client, fake_source):
    viewer = await make_user_headers(archnest_client, "vic", "viewer")
    url = "/api/exec?host=fake:1&container=c1&cmd=sh"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await archnest_client.ws_connect(url, headers=viewer)
    assert info.value.status == 403
    login = await archnest_client.post(
        "/api/auth/login", json={"username": "admin", "password": "admin-password-1"}
    )
    assert login.status == 200
    # The browser's cookie, sent by a page of another site (cross-site WebSocket hijacking).
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await archnest_client.ws_connect(url, headers={"Origin": "https://evil.example"})
    assert info.value.status == 403
    assert fake_source.execs == []
    origin = str(archnest_client.make_url("")).rstrip("/")
    ws = await archnest_client.ws_connect(url, headers={"Origin": origin})
    await ws.close()
    assert len(fake_source.execs) == 1
