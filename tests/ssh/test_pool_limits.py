"""Pool limits against the real sshd: per-target concurrency cap and idle close."""

from __future__ import annotations

import asyncio
import time

import pytest
from archnest.ssh import SSH_POOL_KEY

from tests.abuse.resources import remote_commands

# The subject is an SSH transport (the sshd and dockerd behind it), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


@pytest.fixture
def archnest_settings(archnest_settings):
    archnest_settings.ssh_idle_seconds = 1.0
    archnest_settings.ssh_max_commands = 2
    return archnest_settings


async def test_concurrency_cap_and_idle_close(archnest_client, admin_headers, chain_target):
    t = await chain_target(1, "key")
    pool = archnest_client.app[SSH_POOL_KEY]
    started = time.monotonic()
    results = await asyncio.gather(*(pool.run(t["id"], "sleep 0.4; echo done") for _ in range(6)))
    elapsed = time.monotonic() - started
    assert [r.stdout for r in results] == [b"done\n"] * 6
    # Two at a time: three waves of 0.4 s, all on one connection.
    assert elapsed >= 1.2, elapsed
    info = pool.connection_info(t["id"])
    assert info["connects"] == 1 and info["hops"] == 1
    # Idle for longer than ARCHNEST_SSH_IDLE_SECONDS: the reaper closes it...
    for _ in range(40):
        if pool.connection_info(t["id"]) is None:
            break
        await asyncio.sleep(0.1)
    assert pool.connection_info(t["id"]) is None
    # ...and the next command simply connects again.
    r = await archnest_client.get(
        f"/api/docker-ssh/hosts/{t['id']}/containers", headers=admin_headers
    )
    assert r.status == 200
    assert pool.connection_info(t["id"])["connects"] == 2


async def test_a_follow_dropped_as_it_starts_leaves_no_process(
    archnest_client, chain_target, testenv_docker
):
    """A signal sent just after the command started was lost now and then, and a
    quiet `docker logs -f` outlived its channel; the pool now waits for the exit."""
    env = testenv_docker
    env.run_container("quiet-drop", ["sleep", "3600"])
    t = await chain_target(0, "key")
    pool = archnest_client.app[SSH_POOL_KEY]
    cmd = "docker logs --timestamps --tail 1 --follow -- quiet-drop"

    async def open_and_drop() -> None:
        async with pool.process(t["id"], cmd):
            pass  # closed the moment the channel is open

    for _ in range(25):
        await asyncio.gather(*(open_and_drop() for _ in range(pool.max_streams)))
    left = remote_commands(env.ssh_target.pid, "quiet-drop")
    assert left == [], left
    assert pool.connection_info(t["id"])["streams"] == 0
