"""ARCHNEST_AGENT_INGEST_WORKER=1: reports validated and stored by a worker process,
with the same answers, stored data, live events and stats as in-process.

The worker needs a SQLite file, so these tests use one whatever ARCHNEST_TEST_DB says.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings
from archnest_docker_agent.source import STORE_KEY
from archnest_docker_agent.worker import WORKER_KEY

from tests.core.test_live import subscribe

from .conftest import post_report
from .payloads import make_report

pytestmark = pytest.mark.db_neutral


@pytest.fixture
def archnest_database_url(tmp_path: Path) -> str:
    # A SQLite file (the app migrates it at startup), whatever the suite's database.
    return f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_INGEST_WORKER"] = "1"
    return archnest_settings


async def _hosts(client: TestClient, headers: dict[str, str]) -> dict[str, dict]:
    r = await client.get("/api/agents/docker/hosts", headers=headers)
    assert r.status == 200
    return {h["host"]: h for h in await r.json()}


async def test_reports_go_through_the_worker_and_read_back(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    worker = archnest_client.app[WORKER_KEY]
    assert worker.starts == 1
    a, b = make_report("worker-a", 4), make_report("worker-b", 2)
    for report in (a, b, a):
        assert (await post_report(archnest_client, report)).status == 204
    hosts = await _hosts(archnest_client, admin_headers)
    assert hosts["worker-a"]["report_count"] == 2 and hosts["worker-b"]["container_count"] == 2
    # The containers and their stats samples, as the worker stored them.
    cid = a["containers"][0]["Id"]
    r = await archnest_client.get(
        f"/api/hosts/agent:worker-a/containers/{cid}", headers=admin_headers
    )
    assert r.status == 200
    detail = await r.json()
    assert detail["id"] == cid
    assert detail["stats"]["cpu_percent"] == a["stats"][cid]["cpu_percent"]
    # Nothing was stored by the app's own writer.
    assert archnest_client.app[STORE_KEY].reports_written == 0


async def test_refusals_are_the_in_process_ones(archnest_client: TestClient) -> None:
    bad = make_report("worker-bad", 1)
    bad["containers"][0]["Id"] = "not-hex"
    r = await post_report(archnest_client, bad)
    assert r.status == 400
    error = (await r.json())["error"]
    assert error["code"] == "invalid_report" and "containers.0.Id" in error["message"]
    r = await post_report(archnest_client, b"{not json")
    assert r.status == 400 and "malformed JSON" in (await r.json())["error"]["message"]
    # The worker is still there for the next good report.
    assert (await post_report(archnest_client, make_report("worker-ok", 1))).status == 204
    assert archnest_client.app[WORKER_KEY].starts == 1


async def test_a_burst_is_all_counted_and_published(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    bodies = [json.dumps(make_report(f"burst-{i}", 5)).encode() for i in range(10)]
    answers = await asyncio.gather(
        *(post_report(archnest_client, bodies[i % 10]) for i in range(80))
    )
    assert [r.status for r in answers] == [204] * 80
    hosts = await _hosts(archnest_client, admin_headers)
    assert sum(h["report_count"] for h in hosts.values()) == 80
    # The worker sent each host's list rows (new containers: the live view's news).
    assert len(archnest_client.app[WORKER_KEY].shown["burst-3"]) == 5


async def test_a_change_reaches_an_events_subscriber(
    archnest_client: TestClient, viewer_headers: dict[str, str]
) -> None:
    events = await subscribe(archnest_client, viewer_headers)
    try:
        report = make_report("worker-live", 3)
        assert (await post_report(archnest_client, report)).status == 204
        first = report["containers"][0]
        await events.wait_for("container", host_id="agent:worker-live", id=first["Id"])
        first["State"].update(Status="paused", Paused=True)
        assert (await post_report(archnest_client, report)).status == 204
        paused = await events.wait_for(
            "container", host_id="agent:worker-live", id=first["Id"], state="paused"
        )
        assert paused["action"] == "update"
    finally:
        events.task.cancel()
        events.resp.close()


async def test_a_killed_worker_is_started_again_and_stores_whole_reports(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    worker = archnest_client.app[WORKER_KEY]
    report = make_report("worker-restart", 3)
    assert (await post_report(archnest_client, report)).status == 204
    assert worker._proc is not None
    os.kill(worker._proc.pid, signal.SIGKILL)
    await worker._proc.wait()
    # The same containers again: the new worker has no cache, so it stores them whole.
    report = copy.deepcopy(report)
    report["containers"].pop()
    assert (await post_report(archnest_client, report)).status == 204
    assert worker.starts == 2
    hosts = await _hosts(archnest_client, admin_headers)
    assert hosts["worker-restart"]["container_count"] == 2
    assert hosts["worker-restart"]["report_count"] == 2


async def test_a_forgotten_host_comes_back_whole_with_its_next_report(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    report = make_report("worker-forget", 3)
    assert (await post_report(archnest_client, report)).status == 204
    r = await archnest_client.delete(
        "/api/agents/docker/hosts/worker-forget", headers=admin_headers
    )
    assert r.status == 204
    assert "worker-forget" not in await _hosts(archnest_client, admin_headers)
    # The very same report: the worker forgot the host too, so it is stored whole.
    assert (await post_report(archnest_client, report)).status == 204
    r = await archnest_client.get(
        "/api/agents/docker/hosts/worker-forget/containers?all=1", headers=admin_headers
    )
    assert r.status == 200 and len(await r.json()) == 3


async def test_closing_the_app_stores_every_accepted_report(
    archnest_client: TestClient, archnest_database_url: str
) -> None:
    answers = await asyncio.gather(
        *(post_report(archnest_client, make_report(f"drain-{i % 4}", 3)) for i in range(40))
    )
    assert [r.status for r in answers] == [204] * 40
    proc = archnest_client.app[WORKER_KEY]._proc
    await archnest_client.close()
    assert proc is not None and proc.returncode == 0  # it drained and exited by itself
    import sqlite3

    path = archnest_database_url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        (total,) = conn.execute("SELECT SUM(report_count) FROM docker_agent_reports").fetchone()
    assert total == 40


async def test_signals_to_the_group_do_not_end_the_worker(archnest_client: TestClient) -> None:
    """A Ctrl-C or a service manager's SIGTERM reaches the worker too; it ends only when
    the app, done with its last report, closes the worker's input."""
    worker = archnest_client.app[WORKER_KEY]
    proc = worker._proc
    assert proc is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(proc.pid, sig)
    await asyncio.sleep(0.5)
    assert proc.returncode is None
    assert (await post_report(archnest_client, make_report("worker-signals", 2))).status == 204
    assert worker.starts == 1
