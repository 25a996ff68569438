"""A dropped connection is replaced transparently; an unreachable host is that host's
error, within the timeout, and does not hold up the others."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import time

import pytest
from archnest import SETTINGS_KEY
from archnest.ssh import SSH_POOL_KEY

from tests.testenv import TestEnv

# The subject is an SSH transport (the sshd and dockerd behind it), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


def sshd_pids_serving(server_port: int, client_port: int) -> set[int]:
    """The sshd processes holding the server end of one TCP connection."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    pids: set[int] = set()
    for line in out.splitlines():
        if f"127.0.0.1:{server_port} " in line and f"127.0.0.1:{client_port} " in line:
            if line.split()[2].endswith(f":{server_port}"):
                pids.update(int(p) for p in re.findall(r"pid=(\d+)", line))
    return pids


def kill_all(pids: set[int]) -> None:
    """SIGKILL each; killing one sshd process of a connection may already have ended
    another (its session child), which is not an error."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_killed_sshd_connection_reconnects(
    archnest_client, admin_headers, chain_target, testenv_docker
):
    env: TestEnv = testenv_docker
    env.run_container("box", ["sh", "-c", "while true; do echo alive; sleep 0.2; done"])
    t = await chain_target(0, "key")
    url = f"/api/docker-ssh/hosts/{t['id']}/containers"
    pool = archnest_client.app[SSH_POOL_KEY]
    assert (await archnest_client.get(url, headers=admin_headers)).status == 200
    info = pool.connection_info(t["id"])
    assert info is not None and info["connects"] == 1
    for _ in range(3):  # the pooled connection is reused, not reopened
        assert (await archnest_client.get(url, headers=admin_headers)).status == 200
    assert pool.connection_info(t["id"])["connects"] == 1

    # A followed log stream is running on the connection when it is killed.
    stream = await archnest_client.get(url + "/box/logs?follow=1", headers=admin_headers)
    assert stream.status == 200
    async with asyncio.timeout(10):  # wait until lines flow over the pooled connection
        while not (await stream.content.readline()).startswith(b"data: "):
            pass
    pids = sshd_pids_serving(env.ssh_target.port, info["local_port"])
    assert pids, "no sshd process found for the pooled connection"
    kill_all(pids)
    # The stream ends instead of hanging...
    async with asyncio.timeout(10):
        while await stream.content.readline():
            pass
    # ...and the next request reconnects without the caller noticing.
    r = await archnest_client.get(url, headers=admin_headers)
    assert r.status == 200, await r.text()
    assert [x["name"] for x in await r.json()] == ["box"]
    assert pool.connection_info(t["id"])["connects"] == 2


async def test_unreachable_targets_are_their_hosts_error(
    archnest_client, admin_headers, make_target, chain_target, testenv_docker
):
    env: TestEnv = testenv_docker
    env.run_container("box")
    good = await chain_target(0, "key")
    # A closed port (refused at once) and a port that accepts but never speaks SSH.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        refused = await make_target(
            env.ssh_target, "key", name="refused", port=closed_port, docker=True
        )
        mute = await make_target(
            env.ssh_target, "key", name="mute", port=silent.getsockname()[1], docker=True
        )
        timeout = archnest_client.app[SETTINGS_KEY].host_timeout
        started = time.monotonic()
        r = await archnest_client.get("/api/hosts", headers=admin_headers)
        elapsed = time.monotonic() - started
        assert r.status == 200 and elapsed < timeout + 1.5, elapsed
        hosts = {x["id"]: x for x in await r.json()}
        assert hosts[f"ssh:{good['id']}"]["status"] == "ok"
        assert hosts[f"ssh:{refused['id']}"]["status"] == "error"
        assert "cannot connect" in hosts[f"ssh:{refused['id']}"]["error"]
        assert hosts[f"ssh:{mute['id']}"]["status"] == "error"

        r = await archnest_client.get(
            f"/api/docker-ssh/hosts/{refused['id']}/containers", headers=admin_headers
        )
        assert r.status == 502 and (await r.json())["error"]["code"] == "ssh_unreachable"
        started = time.monotonic()
        r = await archnest_client.get(
            f"/api/docker-ssh/hosts/{mute['id']}/containers", headers=admin_headers
        )
        assert r.status == 504 and time.monotonic() - started < timeout + 1.5
    finally:
        silent.close()
