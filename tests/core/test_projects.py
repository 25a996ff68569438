"""Compose projects: the grouping on its own, then ``/api/projects`` and the project
actions against real containers carrying compose labels on the test dockerd, read as two
hosts (a docker engine on the unix socket and an ssh target driving the same daemon)
plus an agent host (read-only) fed by the real agent script.

The dockerd is shared with other tests: every container here has a random project name
and is removed by name afterwards (never "remove all").
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from archnest import ContainerSummary, Settings
from archnest.keys import SETTINGS_KEY, SOURCES_KEY
from archnest.projects import (
    PER_HOST_ACTIONS,
    PROJECT_LABEL,
    SERVICE_LABEL,
    ProjectContainer,
    act_on,
    group_projects,
    project_state,
    validate_project_name,
)
from archnest.sources import Capabilities, HostInfo, HostSource

from tests.agent.conftest import TOKEN
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv
from tests.three_sources import agent_report

# Ends at once on SIGTERM (a plain `sleep` as PID 1 ignores it and waits out the grace).
QUICK_STOP = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


# ---- the grouping, without any host ---------------------------------------------------


def _host(host_id: str, manage: bool = True) -> HostInfo:
    source = host_id.partition(":")[0]
    return HostInfo(
        id=host_id, source=source, name=f"{host_id}-name", capabilities=Capabilities(manage=manage)
    )


def _c(host_id: str, name: str, state: str, project: str | None, service: str | None = None):  # type: ignore[no-untyped-def]
    labels = {"other": "x"}
    if project is not None:
        labels[PROJECT_LABEL] = project
    if service is not None:
        labels[SERVICE_LABEL] = service
    return ContainerSummary(
        id=secrets.token_hex(32),
        name=name,
        image="img",
        state=state,
        labels=labels,
        host_id=host_id,
    )


def test_group_projects_by_label_across_hosts() -> None:
    hosts = [_host("docker:1"), _host("ssh:2"), _host("agent:box", manage=False)]
    containers = [
        _c("ssh:2", "shop-web-1", "running", "shop", "web"),
        _c("docker:1", "shop-db-1", "exited", "shop", "db"),
        _c("docker:1", "shop-web-2", "running", "shop", "web"),
        _c("docker:1", "loose", "running", None),  # not in any project
        _c("agent:box", "blog-app-1", "running", "blog", "app"),
        _c("agent:box", "blog-oneoff", "exited", "blog"),  # no service label
        _c("docker:1", "api-1", "running", "api", "api"),
        _c("gone:9", "api-2", "running", "api", "api"),  # host not listed: not manageable
    ]
    projects = {p.name: p for p in group_projects(hosts, containers)}
    assert list(projects) == ["api", "blog", "shop"]  # sorted, "loose" left out

    shop = projects["shop"]
    assert shop.state == "partial" and shop.hosts == ["docker:1", "ssh:2"]
    assert not shop.read_only
    assert [s.name for s in shop.services] == ["db", "web"]
    web = shop.services[1]
    assert [(m.host_id, m.name) for m in web.containers] == [
        ("docker:1", "shop-web-2"),
        ("ssh:2", "shop-web-1"),
    ]
    assert web.containers[1].host_name == "ssh:2-name" and web.containers[1].manageable

    blog = projects["blog"]
    assert blog.read_only and blog.hosts == ["agent:box"]
    assert [s.name for s in blog.services] == ["", "app"]
    assert not any(m.manageable for s in blog.services for m in s.containers)

    api = projects["api"]
    assert api.state == "running" and not api.read_only
    assert [m.manageable for m in api.services[0].containers] == [True, False]


def test_project_state() -> None:
    assert project_state(["running", "running"]) == "running"
    assert project_state(["running", "exited"]) == "partial"
    assert project_state(["running", "paused"]) == "partial"
    assert project_state(["exited", "created", "dead"]) == "stopped"
    assert project_state([]) == "stopped"


@pytest.mark.parametrize("name", ["shop", "my_app-2", "0x", "a" * 128])
def test_valid_project_names(name: str) -> None:
    assert validate_project_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Shop", "-x", "_x", "a.b", "a b", "a;rm -rf /", "a" * 129, "é", "a{b}"]
)
def test_invalid_project_names(name: str) -> None:
    with pytest.raises(Exception) as info:
        validate_project_name(name)
    assert getattr(info.value, "status", None) == 400


# ---- against the real dockerd ---------------------------------------------------------


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = TOKEN  # the agent ingest, enabled
    archnest_settings.host_timeout = 15.0
    return archnest_settings


@pytest.fixture
def project(testenv: TestEnv) -> Iterator[dict[str, str]]:
    """A compose-labelled project of two services (web, db), with a random name."""
    name = f"proj-{secrets.token_hex(4)}"
    members = {"web": f"{name}-web-1", "db": f"{name}-db-1"}
    try:
        for service, container in members.items():
            testenv.run_container(
                container,
                QUICK_STOP,
                labels={PROJECT_LABEL: name, SERVICE_LABEL: service, "com.example.t": "projects"},
            )
        yield {"name": name, **members}
    finally:
        testenv.docker("rm", "-f", *members.values(), check=False)


async def _hosts(client: TestClient, h: dict[str, str], env: TestEnv) -> tuple[str, str]:
    engine = await add_engine(client, h, engine_body(env, "unix", name="projects-engine"))
    body = target_payload(env, env.ssh_target, "key", name="projects-ssh", docker=True)
    resp = await client.post("/api/ssh/targets", json=body, headers=h)
    assert resp.status == 201, await resp.text()
    return f"docker:{engine}", f"ssh:{(await resp.json())['id']}"


async def _projects(client: TestClient, h: dict[str, str], query: str = "") -> dict[str, Any]:
    resp = await client.get(f"/api/projects{query}", headers=h)
    assert resp.status == 200, await resp.text()
    return {p["name"]: p for p in await resp.json()}


async def _project_when(
    client: TestClient,
    h: dict[str, str],
    name: str,
    state: str,
    hosts: list[str] | None = None,
    query: str = "",
    timeout: float = 10,
) -> dict[str, Any]:
    """The project once it is in ``state`` (and on exactly ``hosts``): lists answer from
    the live state, which follows the engine's events (within 2 s by contract) and a new
    host's first listing, not at the same instant."""
    deadline = time.monotonic() + timeout
    while True:
        project = (await _projects(client, h, query)).get(name)
        if (
            project is not None
            and project["state"] == state
            and (hosts is None or project["hosts"] == sorted(hosts))
        ):
            return project
        if time.monotonic() > deadline:
            raise AssertionError(f"project {name} not {state} on {hosts} in {timeout}s: {project}")
        await asyncio.sleep(0.2)


def _state(env: TestEnv, name: str) -> str:
    return env.docker("inspect", "-f", "{{.State.Status}}", name)


def _started_at(env: TestEnv, name: str) -> str:
    return json.loads(env.docker("inspect", name))[0]["State"]["StartedAt"]


async def test_projects_grouped_across_two_hosts_with_their_states(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv: TestEnv,
    project: dict[str, str],
) -> None:
    client, env, name = archnest_client, testenv, project["name"]
    docker_host, ssh_host = await _hosts(client, admin_headers, env)

    p = await _project_when(client, viewer_headers, name, "running", [docker_host, ssh_host])
    assert p["read_only"] is False
    assert [s["name"] for s in p["services"]] == ["db", "web"]
    for service in p["services"]:
        # The same daemon behind both hosts: each service has its container on each.
        members = service["containers"]
        assert [m["host_id"] for m in members] == sorted([docker_host, ssh_host])
        assert {m["name"] for m in members} == {project[service["name"]]}
        full_id = env.docker("inspect", "-f", "{{.Id}}", project[service["name"]])
        assert {m["id"] for m in members} == {full_id}
        assert all(m["state"] == "running" and m["manageable"] for m in members)

    # ?host= limits the answer to those hosts.
    only = await _project_when(client, viewer_headers, name, "running", query=f"?host={ssh_host}")
    assert only["hosts"] == [ssh_host]
    assert [m["host_id"] for s in only["services"] for m in s["containers"]] == [ssh_host] * 2

    env.docker("stop", project["db"])
    p = await _project_when(client, viewer_headers, name, "partial")
    states = {(s["name"], m["state"]) for s in p["services"] for m in s["containers"]}
    assert states == {("db", "exited"), ("web", "running")}
    env.docker("stop", project["web"])
    p = await _project_when(client, viewer_headers, name, "stopped")
    assert {m["state"] for s in p["services"] for m in s["containers"]} == {"exited"}


async def test_project_actions_change_the_real_containers(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv: TestEnv,
    project: dict[str, str],
) -> None:
    client, env, name = archnest_client, testenv, project["name"]
    docker_host, ssh_host = await _hosts(client, admin_headers, env)
    containers = (project["web"], project["db"])
    await _project_when(client, admin_headers, name, "running", [docker_host, ssh_host])

    resp = await client.post(f"/api/projects/{name}/stop", headers=admin_headers)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["project"] == name and answer["action"] == "stop" and answer["ok"] is True
    assert sorted((r["host_id"], r["name"]) for r in answer["results"]) == sorted(
        (h, c) for h in (docker_host, ssh_host) for c in containers
    )
    assert all(r["ok"] and r["error"] is None and not r["skipped"] for r in answer["results"])
    assert [_state(env, c) for c in containers] == ["exited", "exited"]
    # The answer and the next list agree at once (the live state was refreshed).
    p = (await _projects(client, admin_headers))[name]
    assert p["state"] == "stopped" and p["hosts"] == sorted([docker_host, ssh_host])

    resp = await client.post(f"/api/projects/{name}/start", headers=admin_headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["ok"] is True
    assert [_state(env, c) for c in containers] == ["running", "running"]

    # Limited to one host: two results, and both containers really restarted.
    before = [_started_at(env, c) for c in containers]
    resp = await client.post(
        f"/api/projects/{name}/restart?host={docker_host}", headers=admin_headers
    )
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["ok"] is True
    assert {r["host_id"] for r in answer["results"]} == {docker_host}
    assert len(answer["results"]) == 2
    after = [_started_at(env, c) for c in containers]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    assert [_state(env, c) for c in containers] == ["running", "running"]
    await _project_when(client, admin_headers, name, "running", [docker_host, ssh_host])


async def test_agent_hosts_are_read_only_and_skipped(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv: TestEnv,
    project: dict[str, str],
) -> None:
    client, env, name = archnest_client, testenv, project["name"]
    engine = await add_engine(client, admin_headers, engine_body(env, "unix", name="p-engine"))
    docker_host = f"docker:{engine}"
    agent_host = await agent_report(client, env, f"projects-{secrets.token_hex(3)}")

    p = await _project_when(client, admin_headers, name, "running", [docker_host, agent_host])
    assert p["read_only"] is False
    flags = {(m["host_id"], m["manageable"]) for s in p["services"] for m in s["containers"]}
    assert flags == {(docker_host, True), (agent_host, False)}
    alone = (await _projects(client, admin_headers, f"?host={agent_host}"))[name]
    assert alone["read_only"] is True

    # Only the agent's copies: nothing is acted on, every container is reported skipped.
    resp = await client.post(f"/api/projects/{name}/stop?host={agent_host}", headers=admin_headers)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert len(answer["results"]) == 2 and answer["ok"] is True
    assert all(r["skipped"] and not r["ok"] and r["error"] for r in answer["results"])
    assert [_state(env, project[s]) for s in ("web", "db")] == ["running", "running"]

    # The whole project: the docker host acts, the agent's rows are skipped, not failed.
    resp = await client.post(f"/api/projects/{name}/stop", headers=admin_headers)
    answer = await resp.json()
    assert answer["ok"] is True
    by_host = {(r["host_id"], r["ok"], r["skipped"]) for r in answer["results"]}
    assert by_host == {(docker_host, True, False), (agent_host, False, True)}
    assert [_state(env, project[s]) for s in ("web", "db")] == ["exited", "exited"]


async def test_project_action_refusals(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv: TestEnv,
    project: dict[str, str],
) -> None:
    client, env, name = archnest_client, testenv, project["name"]
    await add_engine(client, admin_headers, engine_body(env, "unix", name="refusals"))

    resp = await client.post(f"/api/projects/{name}/stop", headers=viewer_headers)
    assert resp.status == 403
    resp = await client.post(f"/api/projects/{name}/stop")
    assert resp.status == 401
    assert _state(env, project["web"]) == "running"

    resp = await client.post(f"/api/projects/{name}-nope/stop", headers=admin_headers)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "unknown_project"

    for bad in ("Upper", "a.b", "a%20b", "%7B%7Bjson%7D%7D", "-lead", "x" * 129):
        resp = await client.post(f"/api/projects/{bad}/stop", headers=admin_headers)
        assert resp.status == 400, bad
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_project" and error["field"] == "name", bad

    for action in ("kill", "remove", "pause", "STOP"):
        resp = await client.post(f"/api/projects/{name}/{action}", headers=admin_headers)
        assert resp.status == 400, action
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_action" and error["field"] == "action"
    assert [_state(env, project[s]) for s in ("web", "db")] == ["running", "running"]


# ---- the fan-out of an action, with a source that records what it is asked ------------


class _Recorder(HostSource):
    """A source whose actions take a moment and record how many ran at once per host;
    "slow-*" never answers (the per-host timeout), "boom-*" raises like a plugin bug."""

    name, capabilities = "rec", Capabilities(manage=True)

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.calls: list[tuple[str, str, str]] = []

    async def action(self, key: str, ref: str, action: str, *, force: bool = False) -> None:
        self.calls.append((key, ref, action))
        if ref.startswith("slow-"):
            await asyncio.sleep(60)
        if ref.startswith("boom-"):
            raise RuntimeError("plugin bug")
        self.running[key] = self.running.get(key, 0) + 1
        self.peak[key] = max(self.peak.get(key, 0), self.running[key])
        await asyncio.sleep(0.05)
        self.running[key] -= 1


def _member(host_id: str, name: str, manageable: bool = True) -> ProjectContainer:
    return ProjectContainer(
        host_id=host_id, id=secrets.token_hex(32), name=name, state="running", manageable=manageable
    )


async def test_act_on_bounds_each_host_and_keeps_failures_per_container(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = web.Application()
    app[SETTINGS_KEY] = Settings(data_dir=tmp_path, host_timeout=0.5)
    source = _Recorder()
    app[SOURCES_KEY] = {"rec": source}
    members = [_member("rec:a", f"a{i}") for i in range(12)]
    members += [_member("rec:b", f"b{i}") for i in range(12)]
    members += [
        _member("rec:b", "slow-1"),
        _member("rec:a", "boom-1"),
        _member("agent:x", "agent-1", manageable=False),
        _member("gone:1", "lost-1"),
    ]
    for m in members[-4:]:  # no valid id: addressed by name
        m.id = ""
    results = await act_on(app, members, "stop")

    assert [(r.host_id, r.name) for r in results] == [(m.host_id, m.name) for m in members]
    assert all(r.ok and r.error is None for r in results[:24])
    # Both hosts at once, neither beyond its bound.
    assert source.peak == {"a": PER_HOST_ACTIONS, "b": PER_HOST_ACTIONS}
    slow, boom, agent, lost = results[24:]
    assert not slow.ok and "no answer within" in (slow.error or "")
    assert not boom.ok and boom.error == "RuntimeError: plugin bug"
    assert agent.skipped and not agent.ok
    assert not lost.ok and not lost.skipped and "unknown source" in (lost.error or "")
    # Ids address the containers; a member without a valid id is addressed by name.
    assert {ref for _, ref, _ in source.calls} >= {members[0].id, "slow-1", "boom-1"}
    assert all(action == "stop" for *_, action in source.calls)
    assert len(source.calls) == 26  # the agent's and the unknown source's never reached one


async def test_act_on_stops_trying_a_host_that_timed_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = web.Application()
    app[SETTINGS_KEY] = Settings(data_dir=tmp_path, host_timeout=0.3)
    source = _Recorder()
    app[SOURCES_KEY] = {"rec": source}
    members = [_member("rec:dead", f"slow-{i}") for i in range(20)]
    members += [_member("rec:ok", f"fine-{i}") for i in range(3)]
    for m in members:
        m.id = ""
    started = time.monotonic()
    results = await act_on(app, members, "restart")
    # One timeout for the dead host (its first few calls in parallel), not 20 / 4 of them.
    assert time.monotonic() - started < 1.0
    dead = results[:20]
    assert not any(r.ok for r in dead)
    tried = [r for r in dead if not (r.error or "").startswith("not tried")]
    assert len(tried) == PER_HOST_ACTIONS
    assert all("no answer within" in (r.error or "") for r in dead)
    assert all(r.ok for r in results[20:])
    assert sum(1 for key, *_ in source.calls if key == "dead") == PER_HOST_ACTIONS
