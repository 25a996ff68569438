"""Logs (tail, stream marks, follow over SSE) and the exec WebSocket, on every transport."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from tests.testenv import TestEnv

# The subject is the Engine API transport (unix, TCP, mutual TLS), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

# stderr in the middle, with pauses so the engine records the two pipes in this order.
PRINT_LINES = (
    "for i in $(seq 1 28); do echo line-$i; done; sleep 0.2; echo oops >&2; sleep 0.2;"
    " echo line-29; echo line-30; sleep 3600"
)


async def test_logs_tail_returns_the_last_lines_marked_by_stream(
    archnest_client: TestClient, viewer_headers: dict[str, str], engine_id: int, testenv_docker
) -> None:
    env = testenv_docker
    env.run_container("logger", cmd=["sh", "-c", PRINT_LINES])
    for _ in range(100):  # the script needs a moment to print
        if "line-30" in env.docker("logs", "logger", check=False):
            break
        await asyncio.sleep(0.05)
    url = f"/api/docker/hosts/{engine_id}/containers/logger/logs"

    resp = await archnest_client.get(url + "?tail=5", headers=viewer_headers)
    assert resp.status == 200
    lines = (await resp.json())["lines"]
    assert [ln["text"] for ln in lines] == ["line-27", "line-28", "oops", "line-29", "line-30"]
    assert [ln["stream"] for ln in lines] == ["stdout", "stdout", "stderr", "stdout", "stdout"]

    resp = await archnest_client.get(url + "?tail=3&timestamps=1", headers=viewer_headers)
    lines = (await resp.json())["lines"]
    assert len(lines) == 3
    assert all(ln["ts"] and ln["ts"].startswith("20") for ln in lines)
    assert [ln["text"] for ln in lines] == ["oops", "line-29", "line-30"]

    resp = await archnest_client.get(url + "?tail=0", headers=viewer_headers)
    assert (await resp.json())["lines"] == []
    future = int(time.time()) + 3600
    resp = await archnest_client.get(url + f"?since={future}", headers=viewer_headers)
    assert (await resp.json())["lines"] == []

    resp = await archnest_client.get(url + "?tail=2&format=text", headers=viewer_headers)
    assert await resp.text() == "line-29\nline-30\n"

    resp = await archnest_client.get(
        f"/api/docker/hosts/{engine_id}/containers/ghost/logs", headers=viewer_headers
    )
    assert resp.status == 404


async def test_follow_delivers_a_line_printed_after_the_request_began(
    archnest_client: TestClient, viewer_headers: dict[str, str], engine_id: int, testenv_docker
) -> None:
    env = testenv_docker
    env.run_container("follower", cmd=["sh", "-c", "echo before; sleep 3600"])
    url = f"/api/docker/hosts/{engine_id}/containers/follower/logs?follow=1&tail=10"
    resp = await archnest_client.get(url, headers=viewer_headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert await resp.content.readline() == b": connected\n"

    # Written to PID 1's stdout: it is the container's own log, printed only now.
    env.docker("exec", "follower", "sh", "-c", "echo printed-later > /proc/1/fd/1")
    seen: list[dict] = []

    async def read_events() -> None:
        while True:
            raw = await resp.content.readline()
            assert raw, "stream ended early"
            if raw.startswith(b"data: "):
                seen.append(json.loads(raw[6:]))
                if seen[-1].get("text") == "printed-later":
                    return

    await asyncio.wait_for(read_events(), 10)
    assert [e["text"] for e in seen] == ["before", "printed-later"]
    assert seen[-1]["stream"] == "stdout"
    resp.close()

    resp = await archnest_client.get(
        f"/api/docker/hosts/{engine_id}/containers/ghost/logs?follow=1", headers=viewer_headers
    )
    assert resp.status == 404


async def _read_until(ws, needle: str, timeout: float = 10) -> str:  # type: ignore[no-untyped-def]
    buf = ""

    async def pump() -> str:
        nonlocal buf
        while needle not in buf:
            msg = await ws.receive()
            assert msg.type == WSMsgType.BINARY, msg
            buf += msg.data.decode(errors="replace")
        return buf

    return await asyncio.wait_for(pump(), timeout)


def _shells(env: TestEnv, name: str) -> list[str]:
    rows = env.docker("top", name, "-o", "pid,args").splitlines()[1:]
    return [r for r in rows if r.split(None, 1)[1].startswith("/bin/sh")]


async def test_exec_echo_resize_and_close_ends_the_process(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    engine_id: int,
    testenv_docker: TestEnv,
) -> None:
    env = testenv_docker
    env.run_container("shell-1")
    url = f"/api/docker/exec?host={engine_id}&container=shell-1&cmd=sh"

    ws = await archnest_client.ws_connect(url, headers=admin_headers)
    await ws.send_bytes(b"echo h''i\n")  # quoted: the echoed input is not the answer
    out = await _read_until(ws, "\r\nhi\r\n")
    assert "@archnest-" not in out  # the pid handshake never reaches the terminal
    assert len(_shells(env, "shell-1")) == 1

    await ws.send_str(json.dumps({"type": "resize", "cols": 123, "rows": 45}))
    await ws.send_str("stty size\n")
    await _read_until(ws, "45 123")

    # A command left running in the foreground goes too.
    await ws.send_str("sleep 987\n")
    for _ in range(50):
        if "sleep 987" in env.docker("top", "shell-1", "-o", "pid,args"):
            break
        await asyncio.sleep(0.05)
    await ws.close()
    for _ in range(100):
        top = env.docker("top", "shell-1", "-o", "pid,args")
        if not _shells(env, "shell-1") and "sleep 987" not in top:
            break
        await asyncio.sleep(0.1)
    assert _shells(env, "shell-1") == []
    assert "sleep 987" not in env.docker("top", "shell-1", "-o", "pid,args")

    # Typing `exit` ends the socket from the other side.
    ws = await archnest_client.ws_connect(url, headers=admin_headers)
    await ws.send_str("exit\n")
    msg = await asyncio.wait_for(_drain_until_closed(ws), 10)
    assert msg in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)


async def _drain_until_closed(ws):  # type: ignore[no-untyped-def]
    while True:
        msg = await ws.receive()
        if msg.type != WSMsgType.BINARY:
            return msg.type


async def test_exec_is_admin_only_and_checks_the_container(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    engine_id: int,
    testenv_docker: TestEnv,
) -> None:
    env = testenv_docker
    env.run_container("shell-2")
    stopped = env.run_container("stopped-2", cmd=["true"])
    env.docker("wait", stopped)
    url = f"/api/docker/exec?host={engine_id}&container="
    resp = await archnest_client.get(url + "shell-2", headers=viewer_headers)
    assert resp.status == 403
    resp = await archnest_client.get(url + "shell-2")
    assert resp.status == 401
    # Without an upgrade nothing starts: a plain GET is a 400 before the host is asked.
    resp = await archnest_client.get(url + "shell-2", headers=admin_headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "websocket_required"
    # The session's own errors come after the upgrade, as the close code 4000 + status.
    for name, status in (("stopped-2", 409), ("ghost", 404)):
        ws = await archnest_client.ws_connect(url + name, headers=admin_headers)
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE and ws.close_code == 4000 + status, msg
    resp = await archnest_client.get(url + "shell-2&cmd=rm", headers=admin_headers)
    assert resp.status == 400
    assert _shells(env, "shell-2") == []
