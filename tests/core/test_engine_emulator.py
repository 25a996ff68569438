"""bench/engine_emulator.py speaks enough Engine API for the real ``docker`` source: an
emulated engine added through the API lists, inspects, answers info and sends the
events that keep the app's list current, all through the real app. (The emulator is a
simulation for scale benches; the real dockerd covers the source's correctness.)"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

ROOT = Path(__file__).resolve().parents[2]


EMULATOR = [sys.executable, str(ROOT / "bench" / "engine_emulator.py")]


@pytest.fixture
def emulator() -> Iterator[dict[str, Any]]:
    proc = subprocess.Popen(
        [*EMULATOR, "--engines", "2", "--containers", "30", "--seed", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        yield {"ports": ready["ports"], "control": f"http://127.0.0.1:{ready['control_port']}"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def raw_list(port: int, all_: bool) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/v1.41/containers/json" + ("?all=1" if all_ else "")
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


def rows(items: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(c["id"], c["name"], c["image"], c["state"]) for c in items}


def engine_rows(items: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(c["Id"], c["Names"][0].lstrip("/"), c["Image"], c["State"]) for c in items}


async def test_the_docker_source_reads_an_emulated_engine(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    emulator: dict[str, Any],
) -> None:
    c = archnest_client
    port = emulator["ports"][1]
    resp = await c.post(
        "/api/docker/hosts",
        json={"name": "emulated", "url": f"tcp://127.0.0.1:{port}"},
        headers=admin_headers,
    )
    assert resp.status == 201, await resp.text()
    host = f"docker:{(await resp.json())['id']}"

    everything = await raw_list(port, all_=True)
    up = await raw_list(port, all_=False)
    # The seed gives both kinds: a list without all=1 must really leave some out.
    assert 0 < len(up) < len(everything) == 30

    resp = await c.get(f"/api/hosts/{host}/containers?all=1", headers=viewer_headers)
    assert resp.status == 200, await resp.text()
    listed = await resp.json()
    assert rows(listed) == engine_rows(everything)
    assert {c["host_id"] for c in listed} == {host}
    compose = [c for c in listed if "com.docker.compose.project" in c["labels"]]
    assert compose and len(compose) < len(listed)

    resp = await c.get(f"/api/hosts/{host}/containers", headers=viewer_headers)
    assert rows(await resp.json()) == engine_rows(up)

    # Detail by name (inspect), and the engine's facts (version + info).
    first = everything[0]
    name = first["Names"][0].lstrip("/")
    resp = await c.get(f"/api/hosts/{host}/containers/{name}", headers=viewer_headers)
    assert resp.status == 200, await resp.text()
    detail = await resp.json()
    assert (detail["id"], detail["name"], detail["state"]) == (first["Id"], name, first["State"])
    assert detail["labels"] == first["Labels"]
    resp = await c.get(f"/api/docker/hosts/{host.partition(':')[2]}/info", headers=viewer_headers)
    assert resp.status == 200, await resp.text()
    info = await resp.json()
    assert info["api_version"] == "1.41" and info["containers"] == 30

    # A change on the engine (and its event) shows in the app's list.
    action = "pause" if first["State"] == "running" else "start"
    async with aiohttp.ClientSession() as http:
        body = {"engine": 1, "container": first["Id"], "action": action}
        async with http.post(emulator["control"] + "/change", json=body) as r:
            changed = await r.json()
    assert changed["id"] == first["Id"] and changed["state"] != first["State"]
    for _ in range(100):
        resp = await c.get(f"/api/hosts/{host}/containers?all=1", headers=viewer_headers)
        now = {x["id"]: x["state"] for x in await resp.json()}
        if now[first["Id"]] == changed["state"]:
            break
        await asyncio.sleep(0.1)
    assert now[first["Id"]] == changed["state"]
