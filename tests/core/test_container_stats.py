"""A container's detail answers from inspect alone; its stats sample is its own request,
``GET .../containers/{ref}/stats``, on every tree.

Against the real dockerd through the ``docker`` source (unix socket), the ``ssh`` source
(the test sshd driving the same dockerd) and the ``agent`` source (the real agent
script, run once). The containers are made so their numbers can be checked: one spins a
CPU with a 64 MiB memory limit, one runs three processes, one has exited.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings, Stats

from tests.agent.conftest import TOKEN
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv
from tests.three_sources import add_docker_and_ssh, agent_report

MEM_LIMIT = 64 * 1024 * 1024
STATS_FIELDS = set(Stats.model_fields)


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = TOKEN  # the agent ingest, enabled
    return archnest_settings


async def _get(client: TestClient, headers: dict[str, str], url: str) -> tuple[Any, float]:
    start = time.perf_counter()
    resp = await client.get(url, headers=headers)
    body = await resp.json()
    elapsed = time.perf_counter() - start
    assert resp.status == 200, f"{url}: {body}"
    return body, elapsed


def _recent(at: str) -> bool:
    when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return abs((datetime.now(UTC) - when).total_seconds()) < 30


async def _three_hosts(
    client: TestClient, h: dict[str, str], env: TestEnv, tag: str
) -> dict[str, str]:
    """The same dockerd as a docker, an ssh and an agent host: source -> host id."""
    docker, ssh = await add_docker_and_ssh(client, h, env, tag)
    return {"docker": docker, "ssh": ssh, "agent": await agent_report(client, env, f"{tag}-agent")}


async def test_detail_without_stats_and_the_sample_apart(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    env, client, h = testenv_docker, archnest_client, viewer_headers
    tag = f"st-{secrets.token_hex(3)}"
    busy, trio, done = f"{tag}-busy", f"{tag}-trio", f"{tag}-done"
    env.run_container(busy, ["sh", "-c", "while :; do :; done"], extra_args=["--memory", "64m"])
    env.run_container(trio, ["sh", "-c", "sleep 3600 & sleep 3600 & wait"])
    env.run_container(done, ["true"])
    env.docker("wait", done)
    await asyncio.sleep(1)  # the busy loop has used some CPU before the agent samples it
    hosts = await _three_hosts(client, admin_headers, env, tag)

    samples: dict[str, dict[str, Any]] = {}
    for source, host in hosts.items():
        base = f"/api/hosts/{host}/containers"
        detail, took = await _get(client, h, f"{base}/{busy}")
        assert detail["name"] == busy and detail["state"] == "running"
        if source == "agent":
            # Stored with the report, so the detail keeps it (documented).
            assert set(detail["stats"]) == STATS_FIELDS, detail["stats"]
        else:
            # Inspect alone: no sample, and no waiting for one (a sample takes the
            # engine a second or more: two readings for the CPU share).
            assert detail["stats"] is None, source
            assert took < 0.9, (source, took)

        body, took = await _get(client, h, f"{base}/{busy}/stats")
        assert set(body) == {"stats", "at"} and _recent(body["at"]), body
        sample = body["stats"]
        assert set(sample) == STATS_FIELDS and all(v is not None for v in sample.values()), (
            source,
            sample,
        )
        # A spinning shell: above idle even on a loaded machine (a share of a core under
        # other work, where an idle one shows 0.00); one process; the limit.
        assert sample["cpu_percent"] > 2, (source, sample)
        assert sample["pids"] == 1, (source, sample)
        assert sample["mem_limit_bytes"] == MEM_LIMIT, (source, sample)
        assert 0 < sample["mem_usage_bytes"] < MEM_LIMIT, (source, sample)
        samples[source] = sample

        body, _ = await _get(client, h, f"{base}/{trio}/stats")
        assert body["stats"]["pids"] == 3, (source, body)  # sh and its two sleeps

        body, _ = await _get(client, h, f"{base}/{done}/stats")
        assert body["stats"] is None, (source, body)  # exited: nothing to sample
        detail, _ = await _get(client, h, f"{base}/{done}")
        assert detail["stats"] is None and detail["exit_code"] == 0

        resp = await client.get(f"{base}/{tag}-nosuch/stats", headers=h)
        assert resp.status == 404, source
        assert (await resp.json())["error"]["code"] == "unknown_container"
        resp = await client.get(f"{base}/bad%20ref/stats", headers=h)
        assert resp.status == 400, source
        resp = await client.get(f"{base}/{busy}/stats")  # no credentials
        assert resp.status == 401, source
    assert samples.keys() == {"docker", "ssh", "agent"}

    # Every per-source alias serves the same route.
    docker_id, ssh_id = hosts["docker"].split(":")[1], hosts["ssh"].split(":")[1]
    for url in (
        f"/api/docker/hosts/{docker_id}/containers/{trio}/stats",
        f"/api/docker-ssh/hosts/{ssh_id}/containers/{trio}/stats",
        f"/api/agents/docker/hosts/{tag}-agent/containers/{trio}/stats",
    ):
        body, _ = await _get(client, h, url)
        assert body["stats"]["pids"] == 3, url


async def test_a_paused_container_has_a_sample_and_a_stopped_one_none(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    """Docker counts a paused container as running (``State.Running``): its sample is
    there, with no CPU used; once stopped, the same container has none."""
    env, client = testenv_docker, archnest_client
    name = f"st-{secrets.token_hex(3)}"
    env.run_container(name)
    env.docker("pause", name)
    engine = await add_engine(client, admin_headers, engine_body(env, "unix", name="pause"))
    body = target_payload(env, env.ssh_target, "key", name="pause-ssh", docker=True)
    resp = await client.post("/api/ssh/targets", json=body, headers=admin_headers)
    target = (await resp.json())["id"]
    urls = [
        f"/api/hosts/docker:{engine}/containers/{name}/stats",
        f"/api/hosts/ssh:{target}/containers/{name}/stats",
    ]
    for url in urls:
        got, _ = await _get(client, viewer_headers, url)
        assert got["stats"] is not None and got["stats"]["pids"] == 1, (url, got)
        assert got["stats"]["cpu_percent"] < 1, (url, got)
    env.docker("unpause", name)
    env.docker("stop", "-t", "0", name)
    for url in urls:
        got, _ = await _get(client, viewer_headers, url)
        assert got["stats"] is None, (url, got)


async def test_a_container_removed_during_its_sample_is_404_not_a_host_error(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    """The sample takes a second or more; a container removed meanwhile is "no such
    container" (or no sample), never a failure of the host (the CLI says only "EOF")."""
    env, client = testenv_docker, archnest_client
    engine = await add_engine(client, admin_headers, engine_body(env, "unix", name="gone"))
    body = target_payload(env, env.ssh_target, "key", name="gone-ssh", docker=True)
    resp = await client.post("/api/ssh/targets", json=body, headers=admin_headers)
    target = (await resp.json())["id"]
    for host in (f"docker:{engine}", f"ssh:{target}"):
        name = f"st-{secrets.token_hex(3)}"
        env.run_container(name)
        url = f"/api/hosts/{host}/containers/{name}"
        await _get(client, viewer_headers, url)  # warm: the pooled connection is open
        pending = asyncio.ensure_future(client.get(url + "/stats", headers=viewer_headers))
        await asyncio.sleep(0.4)
        await asyncio.to_thread(env.docker, "rm", "-f", name)
        resp = await pending
        got = await resp.json()
        assert (resp.status, got.get("stats", "-")) == (200, None) or (
            resp.status == 404 and got["error"]["code"] == "unknown_container"
        ), (host, resp.status, got)
