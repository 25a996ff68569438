"""Ingest refusals (503/401/413/400) never replace the last good report; staleness;
read endpoints; group commit loses nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient
from archnest import plugin_settings
from archnest_docker_agent.settings import AgentSettings

from .conftest import REPORT_URL, TOKEN, Restart, post_report
from .payloads import make_report

HOST = "good-host"
BASE = f"/api/agents/docker/hosts/{HOST}"


async def _snapshot(client: TestClient, headers: dict[str, str]) -> tuple:
    hosts = await (await client.get("/api/agents/docker/hosts", headers=headers)).json()
    items = await (await client.get(BASE + "/containers?all=1", headers=headers)).json()
    detail = await (await client.get(BASE + "/containers/svc-000", headers=headers)).json()
    return hosts, items, detail


async def _good(client: TestClient, viewer_headers: dict[str, str]) -> tuple:
    resp = await post_report(client, make_report(HOST, 50))
    assert resp.status == 204, await resp.text()
    return await _snapshot(client, viewer_headers)


async def _assert_error(resp, status: int, code: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body) == {"error"} and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


async def test_good_report_is_served(archnest_client: TestClient, viewer_headers) -> None:
    hosts, items, detail = await _good(archnest_client, viewer_headers)
    assert [h["host"] for h in hosts] == [HOST]
    assert hosts[0]["container_count"] == 50 and hosts[0]["stale"] is False
    assert len(items) == 50
    running = await (await archnest_client.get(BASE + "/containers", headers=viewer_headers)).json()
    assert len(running) == 40 and all(c["state"] == "running" for c in running)
    assert detail["name"] == "svc-000" and detail["stats"]["pids"] == 4
    assert detail["ports"] == [{"private": 8080, "public": 18000, "type": "tcp", "ip": "0.0.0.0"}]
    assert detail["networks"][0]["name"] == "stack_default"
    assert detail["mounts"][0]["destination"] == "/data"
    assert detail["health"] == "healthy" and detail["restart_count"] == 0
    # Whole seconds, as every source gives a container's times; the status carries
    # the health, as Docker's list does.
    assert detail["started_at"] == "2026-11-27T03:29:23Z"
    assert detail["created"] == "2026-11-27T03:29:23Z"
    assert detail["status"] == "Up (healthy)"
    assert detail["finished_at"] is None
    host = await (await archnest_client.get(BASE, headers=viewer_headers)).json()
    assert host["engine"]["version"] == "28.2.2" and host["host_facts"]["cpus"] == 2


async def test_401_bad_or_missing_token_keeps_previous(
    archnest_client: TestClient, viewer_headers, admin_headers
) -> None:
    before = await _good(archnest_client, viewer_headers)
    changed = make_report(HOST, 3)
    await _assert_error(await post_report(archnest_client, changed, token="nope"), 401)
    await _assert_error(await post_report(archnest_client, changed, token=TOKEN + "x"), 401)
    await _assert_error(await post_report(archnest_client, changed, token=None), 401)
    # A user's API token is not an agent token.
    resp = await archnest_client.post(REPORT_URL, data=json.dumps(changed), headers=admin_headers)
    await _assert_error(resp, 401)
    assert await _snapshot(archnest_client, viewer_headers) == before


async def test_503_when_no_agent_token_configured(
    archnest_client: TestClient, viewer_headers, restart_app: Restart
) -> None:
    before = await _good(archnest_client, viewer_headers)
    client = await restart_app(ARCHNEST_AGENT_TOKEN=None)
    assert plugin_settings(client.app, AgentSettings).token is None
    err = await _assert_error(await post_report(client, make_report(HOST, 2)), 503)
    assert "ARCHNEST_AGENT_TOKEN" in err["message"]
    # Even the once-valid token is refused while ingest is disabled.
    await _assert_error(await post_report(client, make_report(HOST, 2), token=TOKEN), 503)
    await _assert_error(await post_report(client, make_report(HOST, 2), token=""), 503)
    assert await _snapshot(client, viewer_headers) == before


async def test_413_over_limit_declared_and_streamed(
    archnest_client: TestClient, viewer_headers
) -> None:
    before = await _good(archnest_client, viewer_headers)
    limit = plugin_settings(archnest_client.app, AgentSettings).max_report_bytes
    assert limit == 5 * 1024 * 1024  # the documented default
    big = make_report(HOST, 10)
    big["containers"][0]["Config"]["Labels"]["pad"] = "x" * limit
    body = json.dumps(big).encode()
    await _assert_error(await post_report(archnest_client, body), 413, "payload_too_large")

    # Chunked (no Content-Length): refused while reading, not after buffering it all.
    sent = 0

    async def chunks():  # type: ignore[no-untyped-def]
        nonlocal sent
        for i in range(0, len(body), 256 * 1024):
            sent += 1
            yield body[i : i + 256 * 1024]

    try:
        resp = await post_report(archnest_client, chunks())
        await _assert_error(resp, 413, "payload_too_large")
    except Exception as exc:  # the server may close before the sender finishes
        assert "Connection" in type(exc).__name__ or "Payload" in type(exc).__name__, exc
    assert await _snapshot(archnest_client, viewer_headers) == before


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "malformed JSON"),
        (b"[]", "schema 1"),
        (json.dumps({**make_report(HOST, 1), "schema": 2}).encode(), "schema"),
        (
            json.dumps({k: v for k, v in make_report(HOST, 1).items() if k != "host"}).encode(),
            "host",
        ),
        (json.dumps({**make_report(HOST, 1), "host": "../etc"}).encode(), "host"),
        (
            json.dumps({**make_report(HOST, 1), "containers": [{"Id": "ZZZ-not-hex"}]}).encode(),
            "containers.0.Id",
        ),
        (json.dumps({**make_report(HOST, 1), "reported_at": "yesterday"}).encode(), "reported_at"),
    ],
)
async def test_400_malformed_or_off_schema_keeps_previous(
    archnest_client: TestClient, viewer_headers, body: bytes, needle: str
) -> None:
    before = await _good(archnest_client, viewer_headers)
    err = await _assert_error(await post_report(archnest_client, body), 400)
    assert needle in err["message"]
    assert before == await _snapshot(archnest_client, viewer_headers)


async def test_400_does_not_echo_values(archnest_client: TestClient) -> None:
    report = make_report(HOST, 1)
    report["containers"][0]["RestartCount"] = "SECRET-LOOKING-VALUE"
    err = await _assert_error(await post_report(archnest_client, report), 400)
    assert "SECRET-LOOKING-VALUE" not in err["message"]


async def test_stale_flag_flips_after_configured_seconds(
    viewer_headers, restart_app: Restart
) -> None:
    client = await restart_app(ARCHNEST_AGENT_STALE_SECONDS="1")
    await _good(client, viewer_headers)

    async def state() -> tuple[bool, str]:
        hosts = await (await client.get("/api/agents/docker/hosts", headers=viewer_headers)).json()
        unified = await (await client.get("/api/hosts", headers=viewer_headers)).json()
        status = next(h["status"] for h in unified if h["id"] == f"agent:{HOST}")
        return hosts[0]["stale"], status

    assert await state() == (False, "ok")
    await asyncio.sleep(1.5)
    assert await state() == (True, "stale")
    assert (await post_report(client, make_report(HOST, 5))).status == 204
    assert await state() == (False, "ok")


async def test_server_masks_again(archnest_client: TestClient, viewer_headers) -> None:
    # An old or broken agent that sends raw secrets: the server still never serves them.
    report = make_report(HOST, 1)
    report["containers"][0]["Config"]["Env"] = [
        "MYSQL_ROOT_PASSWORD=raw-secret",
        "REDIS_URL=redis://:raw-pw@cache:6379",
        "OK=1",
    ]
    assert (await post_report(archnest_client, report)).status == 204
    resp = await archnest_client.get(BASE + "/containers/svc-000", headers=viewer_headers)
    text = await resp.text()
    assert "raw-secret" not in text and "raw-pw" not in text
    env = {e["name"]: e for e in json.loads(text)["env"]}
    assert env["MYSQL_ROOT_PASSWORD"]["masked"] and env["OK"]["value"] == "1"


async def test_read_routes_need_a_viewer_and_refs_are_checked(
    archnest_client: TestClient, viewer_headers
) -> None:
    await _good(archnest_client, viewer_headers)
    for path in ("/api/agents/docker/hosts", BASE + "/containers", BASE + "/containers/svc-000"):
        assert (await archnest_client.get(path)).status == 401
    get = archnest_client.get
    await _assert_error(await get(BASE + "/containers/no-such", headers=viewer_headers), 404)
    await _assert_error(await get(BASE + "/containers/a%20b", headers=viewer_headers), 400)
    await _assert_error(
        await get("/api/agents/docker/hosts/nohost/containers", headers=viewer_headers), 404
    )
    # Read-only: no logs, and actions are refused even for a viewer-proof reason.
    resp = await get(BASE + "/containers/svc-000/logs", headers=viewer_headers)
    assert resp.status == 501


async def test_concurrent_reports_lose_nothing(archnest_client: TestClient, viewer_headers) -> None:
    hosts = [f"h{i}" for i in range(5)]
    bodies = [json.dumps(make_report(h, 20)).encode() for h in hosts]
    results = await asyncio.gather(
        *(post_report(archnest_client, bodies[i % 5]) for i in range(60))
    )
    assert [r.status for r in results] == [204] * 60
    listed = await (
        await archnest_client.get("/api/agents/docker/hosts", headers=viewer_headers)
    ).json()
    assert sorted(h["host"] for h in listed) == hosts
    assert sum(h["report_count"] for h in listed) == 60


async def test_admin_can_forget_a_host(
    archnest_client: TestClient, viewer_headers, admin_headers
) -> None:
    await _good(archnest_client, viewer_headers)
    assert (await archnest_client.delete(BASE, headers=viewer_headers)).status == 403
    assert (await archnest_client.delete(BASE, headers=admin_headers)).status == 204
    assert (await archnest_client.delete(BASE, headers=admin_headers)).status == 404
    hosts = await (
        await archnest_client.get("/api/agents/docker/hosts", headers=viewer_headers)
    ).json()
    assert hosts == []
