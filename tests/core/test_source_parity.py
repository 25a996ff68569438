"""One real container read through every real source gives the same model.

The container has a healthcheck, a published port, a named volume, secret-looking env
values and labels. It is read through the ``docker`` source (Engine API on the test
dockerd), the ``ssh`` source on the test sshd that drives the same dockerd (its Engine
API stream, then its docker CLI fallback), and the ``agent`` source (the real agent
script, run once against the app). List rows and details must be equal field by field,
except ``host_id`` and the detail's ``stats`` (null on docker and ssh, which answer from
inspect alone; the agent's report carries its sample). The samples of ``.../stats``
differ by nature in their values; their keys and which of them have a value must not.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from archnest import MASK, SOURCES_KEY, ContainerSummary, Settings

from tests.agent.conftest import TOKEN
from tests.testenv import TestEnv
from tests.three_sources import add_docker_and_ssh, agent_report

SUMMARY_FIELDS = tuple(ContainerSummary.model_fields)
SECRETS = {
    "DB_PASSWORD": "hunter2-s3cr3t",
    "API_TOKEN": "tok-0123456789",
    "DATABASE_URL": "postgres://app:pw-in-url@db:5432/app",
    "NOTE": "mirror at https://ops:pw-in-note@mirror.example/x",
}
PLAIN = {"TZ": "UTC", "APP_MODE": "production"}
LABELS = {"com.example.role": "web", "com.example.team": "ops", "tier": "a=b"}


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = TOKEN  # the agent ingest, enabled
    return archnest_settings


async def _get(client: TestClient, headers: dict[str, str], url: str) -> Any:
    resp = await client.get(url, headers=headers)
    assert resp.status == 200, f"{url}: {await resp.text()}"
    return await resp.json()


async def _wait_healthy(env: TestEnv, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = env.docker("inspect", "-f", "{{.State.Health.Status}}", name)
        if status == "healthy":
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{name} did not become healthy (last: {status!r})")


def _without_host(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "host_id"}


def _rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((_without_host(x) for x in items), key=lambda x: x["id"])


def _comparable_detail(detail: dict[str, Any]) -> dict[str, Any]:
    out = _without_host(detail)
    del out["stats"]  # compared through .../stats
    return out


def _shape(stats: dict[str, Any] | None) -> dict[str, bool] | None:
    # A sample: which fields it has and which have a value, not the values.
    return None if stats is None else {k: v is not None for k, v in stats.items()}


async def test_one_container_reads_the_same_through_every_source(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    env, client, h = testenv_docker, archnest_client, admin_headers
    name = f"parity-{secrets.token_hex(3)}"
    volume = f"{name}-data"
    env.run_container(
        name,
        env={**SECRETS, **PLAIN},
        labels=LABELS,
        ports=["18080:80"],
        extra_args=[
            "-v",
            f"{volume}:/data",
            # busybox sh: healthy once the volume is mounted and writable.
            "--health-cmd",
            "touch /data/.probe && test -f /data/.probe",
            "--health-interval",
            "1s",
            "--health-start-period",
            "0s",
        ],
    )
    env.run_container(f"{name}-stopped", ["true"])  # a second row, exited, in `all=1`
    env.docker("wait", f"{name}-stopped")
    try:
        await _wait_healthy(env, name)

        # The three sources, all on the same dockerd.
        docker_host, ssh_host = await add_docker_and_ssh(client, h, env, "parity")
        agent_host = "parity-agent"
        hosts = {
            "docker": docker_host,
            "ssh": ssh_host,
            "agent": await agent_report(client, env, agent_host),
        }

        ssh_source = client.app[SOURCES_KEY]["ssh"]
        lists: dict[str, list[dict]] = {}
        details: dict[str, dict] = {}
        samples: dict[str, dict | None] = {}
        for source, host in hosts.items():
            base = f"/api/hosts/{host}/containers"
            lists[source] = await _get(client, h, base + "?all=1")
            lists[source + " running"] = await _get(client, h, base)
            details[source] = await _get(client, h, f"{base}/{name}")
            samples[source] = (await _get(client, h, f"{base}/{name}/stats"))["stats"]
            assert {x["host_id"] for x in lists[source]} == {host}
            assert details[source]["host_id"] == host
        # The ssh rows above came through its Engine API stream ...
        streamed, cli_runs = ssh_source.engine.requests, ssh_source.cli_runs
        assert streamed >= 2
        # ... and now through the docker CLI fallback (what ARCHNEST_SSH_ENGINE_API=0 sets).
        ssh_source.engine.enabled = False
        for suffix in ("?all=1", ""):
            key = "ssh cli" + (" running" if not suffix else "")
            lists[key] = await _get(client, h, f"/api/hosts/{ssh_host}/containers{suffix}")
        assert ssh_source.cli_runs == cli_runs + 2 and ssh_source.engine.requests == streamed

        # List rows: equal field by field, whichever source (and path) read them.
        want = _rows(lists["docker"])
        assert len(want) == 2
        for key in ("ssh", "agent", "ssh cli"):
            assert _rows(lists[key]) == want, key
        running = _rows(lists["docker running"])
        assert [r["name"] for r in running] == [name]
        for key in ("ssh running", "agent running", "ssh cli running"):
            assert _rows(lists[key]) == running, key

        # Details: equal field by field; stats only where the source has it for free.
        want_detail = _comparable_detail(details["docker"])
        for source in ("ssh", "agent"):
            assert _comparable_detail(details[source]) == want_detail, source
        assert details["docker"]["stats"] is None and details["ssh"]["stats"] is None
        assert _shape(details["agent"]["stats"]) == _shape(samples["agent"])
        # Samples: same fields, same ones present.
        want_stats = _shape(samples["docker"])
        for source in ("ssh", "agent"):
            assert _shape(samples[source]) == want_stats, source
        assert want_stats is not None  # running: every source has a sample
        assert set(want_stats) == {
            "cpu_percent",
            "mem_usage_bytes",
            "mem_limit_bytes",
            "net_rx_bytes",
            "net_tx_bytes",
            "block_read_bytes",
            "block_write_bytes",
            "pids",
        }
        assert all(want_stats.values())

        # A detail's list fields are its list row's.
        row = next(r for r in want if r["name"] == name)
        assert {k: want_detail[k] for k in SUMMARY_FIELDS if k != "host_id"} == row

        # And what they agree on is right.
        inspect = json.loads(env.docker("inspect", name))[0]
        assert row["status"] == "Up (healthy)" and want_detail["health"] == "healthy"
        assert row["state"] == "running" and row["labels"] == LABELS
        assert row["created"] == inspect["Created"][:19] + "Z"
        assert want_detail["started_at"] == inspect["State"]["StartedAt"][:19] + "Z"
        assert want_detail["finished_at"] is None
        stopped = next(r for r in want if r["name"] == f"{name}-stopped")
        assert (stopped["state"], stopped["status"]) == ("exited", "Exited (0)")
        # The daemon runs with --bridge=none: the binding is recorded in HostConfig,
        # but nothing is published, and the Engine lists no port for any source.
        assert inspect["HostConfig"]["PortBindings"] == {
            "80/tcp": [{"HostIp": "", "HostPort": "18080"}]
        }
        assert row["ports"] == []
        assert [m["destination"] for m in want_detail["mounts"]] == ["/data"]
        assert want_detail["mounts"][0]["type"] == "volume"
        assert want_detail["mounts"][0]["rw"] is True
        env_vars = {e["name"]: (e["value"], e["masked"]) for e in want_detail["env"]}
        for key in SECRETS:
            assert env_vars[key] == (MASK, True), key
        for key, value in PLAIN.items():
            assert env_vars[key] == (value, False), key
        assert not any(secret in json.dumps(details) for secret in SECRETS.values())
        assert want_detail["extra"]["image_id"] == inspect["Image"]
    finally:
        env.remove_all_containers()
        env.docker("volume", "rm", "-f", volume, check=False)
