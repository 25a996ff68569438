"""Container timelines (``GET .../containers/{ref}/timeline``): state changes from the
engine's events on docker and ssh hosts, from report differences on agent hosts.

Against the real dockerd through the ``docker`` source (unix socket), the ``ssh``
source (the test sshd driving the same dockerd) and the ``agent`` source (the real
agent script); the parsing and the report differences also as pure functions."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings
from archnest.timeline import entries_from_reports, entry_from_engine_event

from tests.agent.conftest import TOKEN
from tests.testenv import TestEnv
from tests.three_sources import add_docker_and_ssh, agent_report


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = TOKEN  # the agent ingest, enabled
    return archnest_settings


# ---- pure -------------------------------------------------------------------------------


def test_engine_events_become_entries_with_the_engine_time() -> None:
    die = {
        "Type": "container",
        "Action": "die",
        "Actor": {"ID": "c" * 64, "Attributes": {"name": "web", "exitCode": "3"}},
        "time": 1764576000,
        "timeNano": 1764576000123456789,
    }
    row = entry_from_engine_event("docker:1", die)
    assert row is not None
    assert (row["event"], row["exit_code"], row["name"]) == ("die", 3, "web")
    assert row["t"] == datetime(2025, 12, 1, 8, 0, 0, 123456, UTC)
    health = {**die, "Action": "health_status: unhealthy"}
    assert entry_from_engine_event("docker:1", health)["health"] == "unhealthy"  # type: ignore[index]
    # Not timeline entries: exec sessions, other object types, events without an id.
    assert entry_from_engine_event("docker:1", {**die, "Action": "exec_start: sh"}) is None
    assert entry_from_engine_event("docker:1", {**die, "Type": "network"}) is None
    assert entry_from_engine_event("docker:1", {**die, "Actor": {}}) is None
    # The CLI fallback's older shape (`status`, `id`) reads the same.
    old = {"status": "oom", "id": "d" * 64, "time": 1764576000}
    assert entry_from_engine_event("ssh:2", old)["event"] == "oom"  # type: ignore[index]


def test_report_differences() -> None:
    t = datetime.now(UTC)
    before = {
        "a": ("running", "a", "Up"),
        "b": ("exited", "b", "Exited (0)"),
        "c": ("running", "c", "Up (health: starting)"),
    }
    now = {
        "a": ("exited", "a", "Exited (137)"),
        "b": ("running", "b", "Up"),
        "c": ("running", "c", "Up (unhealthy)"),
        "d": ("running", "d", "Up"),  # new since the last report: it started
    }
    got = {
        (r["container_id"], r["event"], r["exit_code"], r["health"])
        for r in entries_from_reports("agent:x", before, now, t)
    }
    assert got == {
        ("a", "die", 137, None),
        ("b", "start", None, None),
        ("c", "health", None, "unhealthy"),
        ("d", "start", None, None),
    }
    # The first report seen says nothing about changes; an unchanged one neither.
    assert entries_from_reports("agent:x", None, now, t) == []
    assert entries_from_reports("agent:x", now, now, t) == []


# ---- real hosts ---------------------------------------------------------------------------


async def _timeline(client: TestClient, h: dict[str, str], host: str, ref: str) -> list[dict]:
    resp = await client.get(f"/api/hosts/{host}/containers/{ref}/timeline", headers=h)
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def _wait_for(
    client: TestClient, h: dict[str, str], host: str, ref: str, want: list[tuple[Any, ...]]
) -> list[dict]:
    """Until the timeline holds these (event, exit_code, health), oldest first, in
    this order (other entries may come between)."""
    deadline = time.monotonic() + 15
    while True:
        body = await _timeline(client, h, host, ref)
        seen = [(e["event"], e["exit_code"], e["health"]) for e in reversed(body)]
        it = iter(seen)
        if all(w in it for w in want):
            return body
        assert time.monotonic() < deadline, (host, ref, seen)
        await asyncio.sleep(0.3)


async def test_timeline_on_docker_ssh_and_agent_hosts(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    env, client, h = testenv_docker, archnest_client, viewer_headers
    tag = f"tl-{secrets.token_hex(3)}"
    watched = list(await add_docker_and_ssh(client, admin_headers, env, tag))
    # Looking at the hosts starts their watchers; wait until both are subscribed.
    deadline = time.monotonic() + 15
    while True:
        resp = await client.get("/api/hosts", headers=h)
        status = {x["id"]: x["status"] for x in await resp.json()}
        if all(status.get(w) == "ok" for w in watched):
            break
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)

    quitter, sick = f"{tag}-quit", f"{tag}-sick"
    agent_host = f"agent:{tag}-agent"
    env.run_container(quitter, ["sh", "-c", "sleep 3; exit 3"])
    env.run_container(
        sick,
        ["sleep", "3600"],
        extra_args=["--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1"],
    )
    await agent_report(client, env, f"{tag}-agent")  # both running
    env.docker("wait", quitter)
    env.docker("start", quitter)  # runs again (and exits 3 again 3 s later)
    await asyncio.sleep(0.5)
    env.docker("restart", "-t", "0", sick)

    for host in watched:
        await _wait_for(
            client,
            h,
            host,
            quitter,
            [("start", None, None), ("die", 3, None), ("start", None, None)],
        )
        await _wait_for(
            client, h, host, sick, [("health", None, "unhealthy"), ("restart", None, None)]
        )

    # The agent: its second report sees the container running again; exited 3 after it.
    env.docker("wait", quitter)
    await agent_report(client, env, f"{tag}-agent")
    timeline = await _wait_for(client, h, agent_host, quitter, [("die", 3, None)])
    assert all(e["t"].endswith("Z") for e in timeline), timeline
    env.docker("start", quitter)
    await agent_report(client, env, f"{tag}-agent")
    await _wait_for(client, h, agent_host, quitter, [("die", 3, None), ("start", None, None)])

    # A removed container's timeline stays readable by its id.
    cid = env.docker("inspect", "-f", "{{.Id}}", quitter).strip()
    env.docker("rm", "-f", quitter)
    deadline = time.monotonic() + 10
    while True:  # until the cache no longer lists it: the stored timeline answers
        resp = await client.get(f"/api/hosts/{watched[0]}/containers/{quitter}", headers=h)
        if resp.status == 404:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    kept = await _timeline(client, h, watched[0], cid)
    assert ("die", 3) in [(e["event"], e["exit_code"]) for e in kept], kept

    # Newest first, bounded; a bad limit and an unknown container are 4xx.
    two = await client.get(f"/api/hosts/{watched[0]}/containers/{cid}/timeline?limit=2", headers=h)
    assert two.status == 200 and len(await two.json()) == 2
    for bad in ("0", "1001", "x"):
        resp = await client.get(
            f"/api/hosts/{watched[0]}/containers/{cid}/timeline?limit={bad}", headers=h
        )
        assert resp.status == 400, bad
    resp = await client.get(f"/api/hosts/{watched[0]}/containers/{tag}-nosuch/timeline", headers=h)
    assert resp.status == 404
    resp = await client.get(f"/api/hosts/{watched[0]}/containers/{cid}/timeline")
    assert resp.status == 401
