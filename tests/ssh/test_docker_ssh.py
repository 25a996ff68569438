"""List, detail, logs, actions and exec over real SSH, for every auth kind and through
zero, one and two jump hosts (target <- jump1 <- jump2)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import WSMsgType

from tests.testenv import TestEnv

# The subject is an SSH transport (the sshd and dockerd behind it), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

MATRIX = [
    ("key", 0),
    ("key-passphrase", 0),
    ("password", 0),
    ("certificate", 0),
    ("key", 1),
    ("password", 1),
    ("certificate", 1),
    ("key", 2),
    ("password", 2),
    ("certificate", 2),
]


def top(env: TestEnv, name: str) -> str:
    return env.docker("top", name)


class Terminal:
    """Collects everything the exec socket sends, so a needle split across frames (or
    across waits) is still found."""

    def __init__(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.ws, self.buffer = ws, ""

    async def expect(self, needle: str, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while needle not in self.buffer:
                msg = await self.ws.receive()
                if msg.type != WSMsgType.BINARY:
                    raise AssertionError(f"socket ended before {needle!r}: {self.buffer!r}")
                self.buffer += msg.data.decode(errors="replace")
        self.buffer = self.buffer[self.buffer.index(needle) + len(needle) :]


@pytest.mark.parametrize(("auth", "hops"), MATRIX)
async def test_list_detail_logs_actions_exec(
    archnest_client, admin_headers, chain_target, testenv_docker, auth, hops
):
    env = testenv_docker
    cid = env.run_container(
        "web",
        [
            "sh",
            "-c",
            "echo out-1; sleep 0.1; echo err-1 >&2; sleep 0.1; echo out-2; exec sleep 3600",
        ],
        env={"DB_PASSWORD": "hunter2", "PLAIN": "visible"},
        labels={"team": "ops,dev"},
        # sleep as PID 1 ignores SIGTERM: keep `stop` well inside the host timeout.
        extra_args=["--stop-timeout", "1"],
    )
    env.run_container("stopped", ["true"], extra_args=["--restart=no"])
    t = await chain_target(hops, auth)
    base = f"/api/docker-ssh/hosts/{t['id']}/containers"
    c, h = archnest_client, admin_headers

    r = await c.get(base, headers=h)
    assert r.status == 200, await r.text()
    listed = {x["name"]: x for x in await r.json()}
    assert listed["web"]["id"] == cid and listed["web"]["state"] == "running"
    assert listed["web"]["labels"] == {"team": "ops,dev"} and "stopped" not in listed
    r = await c.get(base + "?all=1", headers=h)
    assert {x["name"]: x["state"] for x in await r.json()}["stopped"] == "exited"
    # The unified view serves the same host.
    r = await c.get(f"/api/hosts/ssh:{t['id']}/containers", headers=h)
    assert [x["id"] for x in await r.json()] == [cid]

    r = await c.get(base + "/web", headers=h)
    detail = await r.json()
    assert r.status == 200 and detail["id"] == cid and detail["command"].startswith("sh -c")
    env_vars = {e["name"]: e for e in detail["env"]}
    assert env_vars["DB_PASSWORD"] == {"name": "DB_PASSWORD", "value": "****", "masked": True}
    assert env_vars["PLAIN"]["value"] == "visible"
    assert detail["stats"] is None  # inspect alone: the sample is .../stats
    r = await c.get(base + "/web/stats", headers=h)
    assert r.status == 200, await r.text()
    sample = (await r.json())["stats"]
    assert sample["pids"] >= 1 and sample["mem_usage_bytes"] > 0
    assert (await c.get(base + "/nosuchbox", headers=h)).status == 404

    r = await c.get(base + "/web/logs?timestamps=1", headers=h)
    lines = (await r.json())["lines"]
    assert [(x["stream"], x["text"]) for x in lines] == [
        ("stdout", "out-1"),
        ("stderr", "err-1"),
        ("stdout", "out-2"),
    ]
    assert all(x["ts"].endswith("Z") for x in lines)
    r = await c.get(base + "/web/logs?tail=1", headers=h)
    assert [x["text"] for x in (await r.json())["lines"]] == ["out-2"]

    ws = await c.ws_connect(f"/api/docker-ssh/exec?host={t['id']}&container=web&cmd=sh", headers=h)
    term = Terminal(ws)
    await ws.send_bytes(b"echo ready-$((6*7))\n")
    await term.expect("ready-42")
    await ws.send_str(json.dumps({"type": "resize", "cols": 101, "rows": 33}))
    # The resize travels ssh window-change -> docker CLI SIGWINCH -> engine: ask until
    # it has arrived.
    for attempt in range(20):
        await ws.send_bytes(b"stty size\n")
        try:
            await term.expect("33 101", timeout=1)
            break
        except TimeoutError:
            assert attempt < 19, f"the terminal was never resized: {term.buffer!r}"
    await ws.send_bytes(b"sleep 4321\n")
    await asyncio.sleep(0.5)
    assert "sleep 4321" in top(env, "web")
    await ws.close()
    # Closing the socket ends the remote process, and what it started.
    for _ in range(50):
        procs = top(env, "web")
        if "sleep 4321" not in procs and "/bin/sh" not in procs:
            break
        await asyncio.sleep(0.2)
    assert "sleep 4321" not in procs and "/bin/sh" not in procs, procs

    for action, state in [
        ("pause", "paused"),
        ("unpause", "running"),
        ("stop", "exited"),
        ("start", "running"),
        ("restart", "running"),
        ("kill", "exited"),
    ]:
        r = await c.post(f"{base}/web/{action}", headers=h)
        assert r.status == 200, (action, await r.text())
        assert env.docker("inspect", "-f", "{{.State.Status}}", "web") == state
    r = await c.post(f"{base}/web/unpause", headers=h)
    assert r.status == 409  # not paused: the host's answer, as a conflict
    r = await c.post(f"{base}/web/remove", headers=h)
    assert r.status == 200
    assert "web" not in env.docker("ps", "-a", "--format", "{{.Names}}").split()


async def test_follow_logs_streams_both_streams(
    archnest_client, admin_headers, chain_target, testenv_docker
):
    env = testenv_docker
    env.run_container(
        "ticker",
        [
            "sh",
            "-c",
            "echo start; i=0; while true; do echo tick-$i >&2; i=$((i+1)); sleep 0.2; done",
        ],
    )
    t = await chain_target(1, "key")
    url = f"/api/docker-ssh/hosts/{t['id']}/containers/ticker/logs?follow=1&tail=all"
    r = await archnest_client.get(url.replace("&tail=all", ""), headers=admin_headers)
    assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
    events = []
    async with asyncio.timeout(10):
        while len(events) < 4:
            raw = (await r.content.readline()).decode()
            if raw.startswith("data: "):
                events.append(json.loads(raw[6:]))
    r.close()
    # stdout and stderr arrive on separate SSH streams: order across them is not kept.
    assert {"stream": "stdout", "text": "start", "ts": None} in events
    assert {e["stream"] for e in events if e["text"].startswith("tick-")} == {"stderr"}
    r = await archnest_client.get(
        f"/api/docker-ssh/hosts/{t['id']}/containers/nope/logs?follow=1", headers=admin_headers
    )
    assert r.status == 404


async def test_roles_and_hosts_listing(
    archnest_client, admin_headers, viewer_headers, chain_target, testenv_docker
):
    testenv_docker.run_container("box")
    t = await chain_target(0, "key")
    base = f"/api/docker-ssh/hosts/{t['id']}/containers"
    assert (await archnest_client.get(base)).status == 401
    assert (await archnest_client.get(base, headers=viewer_headers)).status == 200
    assert (await archnest_client.post(base + "/box/stop", headers=viewer_headers)).status == 403
    r = await archnest_client.get("/api/docker-ssh/hosts", headers=viewer_headers)
    hosts = await r.json()
    # Jump hosts are targets too, but only docker-flagged ones are docker hosts.
    assert [x["id"] for x in hosts] == [f"ssh:{t['id']}"]
    r = await archnest_client.get("/api/hosts", headers=viewer_headers)
    ours = [x for x in await r.json() if x["source"] == "ssh"]
    assert ours[0]["status"] == "ok" and ours[0]["capabilities"]["exec"] is True


async def test_sudo_target_runs_docker_through_sudo(
    archnest_client, admin_headers, make_target, testenv_docker
):
    # The test user may not sudo (or sudo is absent): the failure must name sudo,
    # which proves the command went through `sudo -n`.
    t = await make_target(name="with-sudo", docker=True, sudo=True)
    r = await archnest_client.get(
        f"/api/docker-ssh/hosts/{t['id']}/containers", headers=admin_headers
    )
    body = await r.json()
    assert r.status == 502 and body["error"]["code"] == "sudo_failed", body
