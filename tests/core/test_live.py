"""The live state against real engines: Docker events reach ``GET /api/events`` and the
cached lists, and a stopped dockerd turns its host to error with its last known
containers still listed (with their age)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from archnest import Settings

from tests.agent.payloads import make_report
from tests.docker_tcp.conftest import KINDS, add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv, TestEnvError
from tests.testenv.standalone import StandaloneDockerd

LATENCY = 2.0  # api.md: a change reaches subscribers within 2 s


class Events:
    """The parsed events of one open ``/api/events`` stream."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        event, data = "message", ""
        async for raw in self.resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                await self.queue.put((event, json.loads(data)))
                event, data = "message", ""

    async def wait_for(self, kind: str, timeout: float = LATENCY, **match: Any) -> dict[str, Any]:
        """The first event of ``kind`` whose fields equal ``match``, within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event matching {match} within {timeout}s")
            try:
                event, data = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                continue
            if event == kind and all(data.get(k) == v for k, v in match.items()):
                return data


async def subscribe(client: TestClient, headers: dict[str, str]) -> Events:
    resp = await client.get("/api/events", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = Events(resp)
    assert (await events.queue.get())[0] == "hello"
    return events


@pytest.fixture
async def events_of(
    archnest_client: TestClient, viewer_headers: dict[str, str]
) -> AsyncIterator[Events]:
    events = await subscribe(archnest_client, viewer_headers)
    try:
        yield events
    finally:
        events.task.cancel()
        events.resp.close()


async def _containers(client: TestClient, headers: dict[str, str], host: str) -> dict[str, Any]:
    resp = await client.get(f"/api/containers?all=1&host={host}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def add_host(c: TestClient, headers: dict[str, str], env: TestEnv, kind: str) -> str:
    """The test dockerd as a host of ``kind``: an Engine API url or an SSH target."""
    if kind == "ssh":
        body = target_payload(env, env.ssh_target, docker=True)
        r = await c.post("/api/ssh/targets", json=body, headers=headers)
        assert r.status == 201, await r.text()
        return f"ssh:{(await r.json())['id']}"
    return f"docker:{await add_engine(c, headers, engine_body(env, kind))}"


@pytest.mark.parametrize("kind", [*KINDS, "ssh"])
async def test_pause_stop_start_reach_a_subscriber_within_2s(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
    events_of: Events,
    kind: str,
) -> None:
    c, env = archnest_client, testenv_docker
    host = await add_host(c, admin_headers, env, kind)
    await _containers(c, viewer_headers, host)  # the watcher starts (the sweep would too)
    name = f"live-{secrets.token_hex(3)}"
    cid = env.run_container(name)
    created = await events_of.wait_for("container", host_id=host, id=cid)
    assert created["name"] == name and created["state"] == "running"
    for command, action, state in (
        ("pause", "pause", "paused"),
        ("unpause", "unpause", "running"),
        ("stop", "die", "exited"),
        ("start", "start", "running"),
    ):
        await asyncio.to_thread(
            env.docker, command, *(["-t", "1"] if command == "stop" else []), cid
        )
        seen = await events_of.wait_for("container", host_id=host, id=cid, state=state)
        assert seen["action"] in (action, "stop", "kill", "update"), seen
    # The list is the cache the events keep: it already shows the last state.
    listed = await _containers(c, viewer_headers, host)
    row = next(r for r in listed["containers"] if r["id"] == cid)
    assert row["state"] == "running"
    (h,) = listed["hosts"]
    assert h["status"] == "ok" and h["data_age"] == 0.0 and h["updated_at"]
    await asyncio.to_thread(env.docker, "rm", "-f", cid)
    gone = await events_of.wait_for("container", host_id=host, id=cid, action="destroy")
    assert gone["state"] == "removed"
    listed = await _containers(c, viewer_headers, host)
    assert cid not in {r["id"] for r in listed["containers"]}


async def test_action_through_the_app_is_in_the_next_list(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    c, env = archnest_client, testenv_docker
    engine = await add_engine(c, admin_headers, {"name": "rw", "url": env.docker_unix_url})
    host = f"docker:{engine}"
    cid = env.run_container(f"rw-{secrets.token_hex(3)}")
    deadline = time.monotonic() + LATENCY
    while cid not in {r["id"] for r in (await _containers(c, admin_headers, host))["containers"]}:
        assert time.monotonic() < deadline, "the new container never reached the list"
        await asyncio.sleep(0.05)
    resp = await c.post(f"/api/hosts/{host}/containers/{cid}/pause", headers=admin_headers)
    assert resp.status == 200, await resp.text()
    # No wait: an action made through the app is in the very next answer.
    rows = (await _containers(c, admin_headers, host))["containers"]
    assert next(r for r in rows if r["id"] == cid)["state"] == "paused"


@pytest.fixture(scope="module")
def own_dockerd() -> Iterator[StandaloneDockerd]:
    try:
        daemon = StandaloneDockerd()
    except (TestEnvError, OSError) as exc:
        pytest.fail(f"a dedicated dockerd could not start: {exc}")
    try:
        yield daemon
    finally:
        daemon.close()


async def test_stopped_dockerd_turns_error_and_keeps_last_known_rows(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    own_dockerd: StandaloneDockerd,
    events_of: Events,
) -> None:
    c, d = archnest_client, own_dockerd
    name = f"kept-{secrets.token_hex(3)}"
    cid = await asyncio.to_thread(
        d.docker, "run", "-d", "--name", name, "archnest-test/busybox:1", "sleep", "3600"
    )
    engine = await add_engine(c, admin_headers, {"name": "own", "url": d.unix_url})
    host = f"docker:{engine}"
    listed = await _containers(c, viewer_headers, host)
    assert cid in {r["id"] for r in listed["containers"]}
    await asyncio.to_thread(d.stop)
    try:
        started = time.monotonic()
        err = await events_of.wait_for("host", timeout=10, host_id=host, status="error")
        assert err["error"], err
        assert time.monotonic() - started < 10
        listed = await _containers(c, viewer_headers, host)
        (h,) = listed["hosts"]
        assert h["status"] == "error" and h["error"]
        # The host selector's list answers from the watcher too: no wait on the dead host.
        t0 = time.monotonic()
        r = await c.get("/api/hosts", headers=viewer_headers)
        assert time.monotonic() - t0 < 1.0
        mine = next(x for x in await r.json() if x["id"] == host)
        assert mine["status"] == "error" and mine["data_age"] is not None
        # Its last known containers stay, with the time they were last known current.
        assert cid in {r["id"] for r in listed["containers"]}
        assert h["updated_at"] and h["data_age"] is not None and h["data_age"] >= 0
        await asyncio.sleep(1.2)
        again = (await _containers(c, viewer_headers, host))["hosts"][0]
        assert again["data_age"] > h["data_age"]
        # The page: the host's list and the all-hosts view keep the rows and say how old.
        for url in (f"/ui/hosts/{host}/containers?all=1", "/ui/containers?all=1"):
            r = await c.get(url, headers=viewer_headers)
            html = await r.text()
            assert r.status == 200 and name in html, url
            assert "last seen" in html and 'class="data-age"' in html, url
    finally:
        await asyncio.to_thread(d.start)
    # Back: the host is ok again (the watcher retries with backoff).
    await events_of.wait_for("host", timeout=40, host_id=host, status="ok")
    h = (await _containers(c, viewer_headers, host))["hosts"][0]
    assert h["status"] == "ok" and h["data_age"] == 0.0


async def test_events_stream_needs_a_user_and_is_bounded(
    archnest_client: TestClient, viewer_headers: dict[str, str]
) -> None:
    c = archnest_client
    resp = await c.get("/api/events")
    assert resp.status == 401
    opened = [await subscribe(c, viewer_headers) for _ in range(20)]
    try:
        resp = await c.get("/api/events", headers=viewer_headers)
        assert resp.status == 429
        assert (await resp.json())["error"]["code"] == "too_many_streams"
    finally:
        for events in opened:
            events.task.cancel()
            events.resp.close()


AGENT_TOKEN = "live-agent-token-" + "y" * 24


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = AGENT_TOKEN
    return archnest_settings


async def test_agent_reports_publish_what_changed(
    archnest_client: TestClient, events_of: Events
) -> None:
    c = archnest_client
    auth = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    report = make_report("live-agent", containers=3)
    assert (await c.post("/api/agents/docker/report", json=report, headers=auth)).status == 204
    first = report["containers"][0]
    seen = await events_of.wait_for("container", host_id="agent:live-agent", id=first["Id"])
    assert seen["action"] == "create" and seen["state"] == "running"
    # The next report: one container paused, one gone; the unchanged one is not news.
    report = make_report("live-agent", containers=3)
    report["containers"][0]["State"].update(Status="paused", Paused=True)
    gone = report["containers"].pop(1)
    assert (await c.post("/api/agents/docker/report", json=report, headers=auth)).status == 204
    paused = await events_of.wait_for("container", host_id="agent:live-agent", id=first["Id"])
    assert paused["state"] == "paused" and paused["action"] == "update"
    removed = await events_of.wait_for("container", host_id="agent:live-agent", id=gone["Id"])
    assert removed["action"] == "destroy"
    with pytest.raises(AssertionError):
        await events_of.wait_for(
            "container", timeout=0.5, host_id="agent:live-agent", id=report["containers"][1]["Id"]
        )
