"""List, detail and actions against the real test dockerd, over unix / TCP / mutual TLS."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient
from archnest import MASK

from tests.testenv import TestEnv

from .conftest import inspect, state_of

# The subject is the Engine API transport (unix, TCP, mutual TLS), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


def base(engine_id: int) -> str:
    return f"/api/docker/hosts/{engine_id}"


def engine_ps(env: TestEnv) -> dict[str, dict]:
    rows = env.docker("ps", "-a", "--no-trunc", "--format", "{{json .}}").splitlines()
    return {r["ID"]: r for r in map(json.loads, rows)}


async def test_list_and_detail_agree_with_the_engine(
    archnest_client: TestClient,
    viewer_headers: dict[str, str],
    engine_id: int,
    testenv_docker: TestEnv,
    tmp_path,
) -> None:
    env = testenv_docker
    (tmp_path / "shared").mkdir()
    running = env.run_container(
        "web-1",
        env={"DB_PASSWORD": "hunter2", "API_TOKEN": "t0k", "LOG_LEVEL": "debug"},
        labels={"com.example.team": "ops", "tier": "front"},
        ports=["8080:80", "5353:53/udp"],
        extra_args=["-v", f"{tmp_path / 'shared'}:/srv/shared:ro", "-v", "/var/cache/app"],
    )
    stopped = env.run_container("job-1", cmd=["true"])
    env.docker("wait", stopped)

    resp = await archnest_client.get(base(engine_id) + "/containers", headers=viewer_headers)
    assert resp.status == 200
    listed = {c["id"]: c for c in await resp.json()}
    assert set(listed) == {running}  # stopped ones only with all=1

    resp = await archnest_client.get(base(engine_id) + "/containers?all=1", headers=viewer_headers)
    listed = {c["id"]: c for c in await resp.json()}
    ps = engine_ps(env)
    assert set(listed) == set(ps) == {running, stopped}
    for cid, row in ps.items():
        item = listed[cid]
        assert item["name"] == row["Names"]
        assert item["image"] == row["Image"]
        assert item["state"] == row["State"]
        assert item["host_id"] == f"docker:{engine_id}"
        want_labels = inspect(env, cid)["Config"]["Labels"] or {}
        assert item["labels"] == want_labels
    assert listed[stopped]["state"] == "exited"

    resp = await archnest_client.get(base(engine_id) + "/containers/web-1", headers=viewer_headers)
    assert resp.status == 200
    detail = await resp.json()
    raw = inspect(env, running)
    assert detail["id"] == raw["Id"]
    assert detail["name"] == raw["Name"].lstrip("/") == "web-1"
    assert detail["image"] == raw["Config"]["Image"]
    assert detail["state"] == raw["State"]["Status"] == "running"
    assert detail["labels"] == raw["Config"]["Labels"]
    assert detail["command"] == " ".join(raw["Config"]["Cmd"])
    want_ports = sorted(
        (int(k.split("/")[0]), k.split("/")[1], int(b["HostPort"]) if b else None)
        for k, bs in (raw["NetworkSettings"]["Ports"] or {}).items()
        for b in (bs or [None])
    )
    got_ports = sorted((p["private"], p["type"], p["public"]) for p in detail["ports"])
    assert got_ports == want_ports
    want_mounts = sorted((m["Destination"], m["Type"], m["RW"]) for m in raw["Mounts"])
    got_mounts = sorted((m["destination"], m["type"], m["rw"]) for m in detail["mounts"])
    assert got_mounts == want_mounts
    assert ("/srv/shared", "bind", False) in got_mounts
    assert ("/var/cache/app", "volume", True) in got_mounts
    env_map = {e["name"]: e for e in detail["env"]}
    assert set(env_map) == {e.split("=", 1)[0] for e in raw["Config"]["Env"]}
    assert env_map["DB_PASSWORD"] == {"name": "DB_PASSWORD", "value": MASK, "masked": True}
    assert env_map["API_TOKEN"]["value"] == MASK
    assert env_map["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "debug", "masked": False}
    assert "hunter2" not in await resp.text()
    # The detail answers from inspect alone; the sample (docker stats' cpu% formula) is
    # its own request.
    assert detail["stats"] is None
    resp = await archnest_client.get(
        base(engine_id) + "/containers/web-1/stats", headers=viewer_headers
    )
    assert resp.status == 200, await resp.text()
    sample = (await resp.json())["stats"]
    assert sample["pids"] >= 1
    assert sample["mem_usage_bytes"] > 0

    resp = await archnest_client.get(
        base(engine_id) + f"/containers/{stopped[:12]}", headers=viewer_headers
    )
    stopped_detail = await resp.json()
    assert stopped_detail["state"] == "exited"
    assert stopped_detail["exit_code"] == 0
    assert stopped_detail["stats"] is None

    # The unified view answers the same.
    resp = await archnest_client.get(
        f"/api/hosts/docker:{engine_id}/containers/web-1", headers=viewer_headers
    )
    assert (await resp.json())["id"] == running

    resp = await archnest_client.get(
        base(engine_id) + "/containers/no-such-thing", headers=viewer_headers
    )
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "unknown_container"
    resp = await archnest_client.get(
        base(engine_id) + "/containers/bad%20ref", headers=viewer_headers
    )
    assert resp.status == 400


async def act(client: TestClient, engine_id: int, ref: str, action: str, headers, **query):  # type: ignore[no-untyped-def]
    qs = "".join(f"?{k}={v}" for k, v in query.items())
    return await client.post(base(engine_id) + f"/containers/{ref}/{action}{qs}", headers=headers)


async def test_each_action_changes_the_real_state(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    engine_id: int,
    testenv_docker: TestEnv,
) -> None:
    env = testenv_docker
    cid = env.run_container("act-1")
    c = archnest_client

    # Viewers and anonymous callers cannot act, and nothing changes.
    assert (await act(c, engine_id, "act-1", "stop", viewer_headers)).status == 403
    assert (await act(c, engine_id, "act-1", "stop", {})).status == 401
    assert state_of(env, cid) == "running"

    steps = [
        ("pause", "paused"),
        ("unpause", "running"),
        ("stop", "exited"),
        ("start", "running"),
        ("kill", "exited"),
        ("start", "running"),
    ]
    for action, want in steps:
        resp = await act(c, engine_id, "act-1", action, admin_headers)
        assert resp.status == 200, (action, await resp.text())
        assert state_of(env, cid) == want, action

    started = inspect(env, cid)["State"]["StartedAt"]
    resp = await act(c, engine_id, "act-1", "restart", admin_headers)
    assert resp.status == 200
    assert state_of(env, cid) == "running"
    assert inspect(env, cid)["State"]["StartedAt"] != started

    # remove refuses a running container unless forced.
    resp = await act(c, engine_id, "act-1", "remove", admin_headers)
    assert resp.status == 409
    assert "running" in (await resp.json())["error"]["message"]
    assert state_of(env, cid) == "running"
    resp = await act(c, engine_id, "act-1", "remove", admin_headers, force=1)
    assert resp.status == 200
    assert env.docker("ps", "-aq", "--filter", f"id={cid}") == ""

    # A stopped container is removed without force.
    cid2 = env.run_container("act-2", cmd=["true"])
    env.docker("wait", cid2)
    assert (await act(c, engine_id, "act-2", "remove", admin_headers)).status == 200
    assert env.docker("ps", "-aq", "--filter", f"id={cid2}") == ""

    assert (await act(c, engine_id, "act-2", "start", admin_headers)).status == 404
    assert (await act(c, engine_id, "act-1", "explode", admin_headers)).status == 400
