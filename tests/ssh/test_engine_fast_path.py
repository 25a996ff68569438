"""The Engine API fast path (one ``docker system dial-stdio`` per target, HTTP/1.1
keep-alive) against the real sshd and dockerd: same rows as the CLI, actually used,
transparent after a killed process or connection, CLI fallback when it cannot open."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from archnest import SOURCES_KEY
from archnest.ssh import SSH_POOL_KEY

from tests.ssh import test_docker_ssh
from tests.ssh.test_resilience import kill_all, sshd_pids_serving
from tests.testenv import TestEnv

# The subject is an SSH transport (the sshd and dockerd behind it), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

FIELDS = ("id", "name", "image", "state", "status", "created", "labels", "host_id")


def rows(items: list[dict]) -> list[dict]:
    return sorted(({k: x[k] for k in FIELDS} for x in items), key=lambda x: x["id"])


def descendants(roots: set[int]) -> dict[int, str]:
    """pid -> command line of every process below ``roots``."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        pid, ppid, args = [*line.split(None, 2), ""][:3]
        children.setdefault(int(ppid), []).append((int(pid), args))
    found: dict[int, str] = {}
    todo = list(roots)
    while todo:
        for pid, args in children.get(todo.pop(), []):
            found[pid] = args
            todo.append(pid)
    return found


def dial_stdio_pids(env: TestEnv, pool, target_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    sshd = sshd_pids_serving(env.ssh_target.port, pool.connection_info(target_id)["local_port"])
    return [p for p, args in descendants(sshd).items() if "dial-stdio" in args]


@pytest.fixture
def engine_api() -> str:
    return "1"  # the default; a test parametrizes "engine_api" to start without it


@pytest.fixture
def archnest_settings(archnest_settings, engine_api):  # type: ignore[no-untyped-def]
    archnest_settings.plugin_env["ARCHNEST_SSH_ENGINE_API"] = engine_api
    return archnest_settings


@pytest.fixture
def source(archnest_client):  # type: ignore[no-untyped-def]
    return archnest_client.app[SOURCES_KEY]["ssh"]


async def listing(client, headers, url: str) -> list[dict]:  # type: ignore[no-untyped-def]
    r = await client.get(url, headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_fast_path_rows_equal_cli_rows_and_it_is_used(
    archnest_client, admin_headers, chain_target, testenv_docker, source
):
    env = testenv_docker
    env.run_container("web", labels={"team": "ops,dev", "tier": "a=b"})
    env.run_container("plain")
    env.run_container("stopped", ["true"], extra_args=["--restart=no"])
    t = await chain_target(0, "key")
    url = f"/api/docker-ssh/hosts/{t['id']}/containers"
    c, h = archnest_client, admin_headers
    pool = c.app[SSH_POOL_KEY]

    fast = await listing(c, h, url)
    fast_all = await listing(c, h, url + "?all=1")
    assert source.engine.opens == 1 and source.engine.requests == 2
    assert source.cli_runs == 0
    # Warm: no new channel, no CLI start, one request each on the same stream.
    channels = pool.channels_opened
    for _ in range(5):
        assert rows(await listing(c, h, url)) == rows(fast)
    assert pool.channels_opened == channels and source.cli_runs == 0
    assert source.engine.opens == 1 and source.engine.requests == 7
    # The stream is a background channel: it does not hold off the idle close.
    assert pool.connection_info(t["id"])["active"] == 0

    source.engine.enabled = False  # what ARCHNEST_SSH_ENGINE_API=0 starts with
    cli = await listing(c, h, url)
    cli_all = await listing(c, h, url + "?all=1")
    assert source.cli_runs == 2 and source.engine.requests == 7
    assert rows(fast) == rows(cli) and rows(fast_all) == rows(cli_all)
    assert {x["name"] for x in fast} == {"web", "plain"}
    assert {x["name"] for x in fast_all} == {"web", "plain", "stopped"}
    assert {x["name"]: x["labels"] for x in fast}["web"] == {"team": "ops,dev", "tier": "a=b"}


@pytest.mark.parametrize("engine_api", ["0"])
async def test_cli_path_still_serves_everything(
    archnest_client, admin_headers, chain_target, testenv_docker, source
):
    assert source.engine.enabled is False  # ARCHNEST_SSH_ENGINE_API=0
    for hops in (0, 1):
        await test_docker_ssh.test_list_detail_logs_actions_exec(
            archnest_client, admin_headers, chain_target, testenv_docker, "key", hops
        )
        testenv_docker.remove_all_containers()
    assert source.engine.opens == 0 and source.engine.requests == 0 and source.cli_runs > 0


async def test_killed_stream_or_connection_is_replaced_transparently(
    archnest_client, admin_headers, chain_target, testenv_docker, source
):
    env = testenv_docker
    cid = env.run_container("box")
    t = await chain_target(0, "key")
    url = f"/api/docker-ssh/hosts/{t['id']}/containers"
    c, h, pool = archnest_client, admin_headers, archnest_client.app[SSH_POOL_KEY]
    assert [x["id"] for x in await listing(c, h, url)] == [cid]
    pids = dial_stdio_pids(env, pool, t["id"])
    assert len(pids) == 1, pids

    for pid in pids:  # the dial-stdio process dies
        os.kill(pid, signal.SIGKILL)
    assert [x["id"] for x in await listing(c, h, url)] == [cid]
    assert source.engine.opens == 2 and source.engine.failures == 0 and source.cli_runs == 0
    assert pool.connection_info(t["id"])["connects"] == 1

    sshd = sshd_pids_serving(env.ssh_target.port, pool.connection_info(t["id"])["local_port"])
    kill_all(sshd)  # the whole SSH connection dies
    assert [x["id"] for x in await listing(c, h, url)] == [cid]
    assert pool.connection_info(t["id"])["connects"] == 2
    assert source.engine.opens == 3 and source.engine.failures == 0 and source.cli_runs == 0

    # A target edit closes its connections, and with them the stream.
    r = await c.patch(f"/api/ssh/targets/{t['id']}", json={"name": "renamed"}, headers=h)
    assert r.status == 200, await r.text()
    assert [x["id"] for x in await listing(c, h, url)] == [cid]
    assert source.engine.opens == 4 and len(dial_stdio_pids(env, pool, t["id"])) == 1


async def test_stream_that_cannot_open_falls_back_with_backoff(
    archnest_client, admin_headers, make_target, chain_target, testenv_docker, source
):
    testenv_docker.run_container("box")
    # The test user may not sudo: `sudo -n docker system dial-stdio` fails, the CLI path
    # answers (with the sudo error), and the next request does not try the stream again.
    t = await make_target(name="with-sudo", docker=True, sudo=True)
    url = f"/api/docker-ssh/hosts/{t['id']}/containers"
    for _ in range(2):
        r = await archnest_client.get(url, headers=admin_headers)
        body = await r.json()
        assert r.status == 502 and body["error"]["code"] == "sudo_failed", body
    assert source.engine.opens == 1 and source.engine.failures == 1 and source.cli_runs == 2
    # Other targets are not affected by that target's backoff.
    good = await chain_target(0, "key")
    await listing(archnest_client, admin_headers, f"/api/docker-ssh/hosts/{good['id']}/containers")
    assert source.engine.requests == 1 and source.cli_runs == 2


async def test_probe_uses_the_stream(
    archnest_client, admin_headers, chain_target, testenv_docker, source
):
    t = await chain_target(0, "key")
    r = await archnest_client.get("/api/hosts", headers=admin_headers)
    ours = [x for x in await r.json() if x["id"] == f"ssh:{t['id']}"]
    assert ours[0]["status"] == "ok"
    assert source.engine.requests >= 1 and source.cli_runs == 0
