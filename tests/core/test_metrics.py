"""``GET /metrics`` against the real app, the real dockerd and a real agent report:
parsed by prometheus_client's own parser, labelled by host and container."""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import time
from dataclasses import replace
from typing import Any

import archnest
import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings, create_app
from prometheus_client.parser import text_string_to_metric_families

from tests.agent.conftest import TOKEN, post_report
from tests.agent.payloads import make_report
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.testenv import TestEnv

Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = TOKEN
    if hasattr(archnest_settings, "stats_interval"):  # the stats collector, when present
        archnest_settings.stats_interval = 1.0
    return archnest_settings


def has_collector() -> bool:
    return importlib.util.find_spec("archnest.stats_collector") is not None


def parse(text: str) -> Samples:
    """Every sample by its full name (``_bucket``, ``_total``...), as Prometheus reads it."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    found = [
        v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    ]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


async def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    resp = await client.get("/metrics", headers=headers or {})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await resp.text())


async def scrape_until(
    client: TestClient, headers: dict[str, str], ok: Any, timeout: float = 30.0
) -> Samples:
    """Scrapes (the exposition is cached for 2 s) until ``ok(samples)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(client, headers)
        if ok(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.5)


async def test_metrics_need_a_token_and_a_viewer_token_suffices(
    archnest_client: TestClient, viewer_headers: dict[str, str]
) -> None:
    resp = await archnest_client.get("/metrics")
    assert resp.status == 401
    resp = await archnest_client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    samples = await scrape(archnest_client, viewer_headers)
    assert value(samples, "archnest_build_info", version=archnest.__version__) == 1.0


async def test_public_mode_answers_without_credentials(
    aiohttp_client: Any, archnest_settings: Settings
) -> None:
    client = await aiohttp_client(create_app(replace(archnest_settings, metrics_public=True)))
    samples = await scrape(client)
    assert samples["archnest_build_info"][0][1] == 1.0
    # A token is not needed, and a bad one is not looked at either: nothing to check.
    resp = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert resp.status == 200


async def test_request_latency_is_by_route_template(
    archnest_client: TestClient, viewer_headers: dict[str, str]
) -> None:
    c = archnest_client
    for _ in range(3):
        assert (await c.get("/healthz")).status == 200
    missing = f"docker:{secrets.randbelow(10**6) + 10**6}"
    resp = await c.get(f"/api/hosts/{missing}/containers", headers=viewer_headers)
    assert resp.status == 404
    samples = await scrape(c, viewer_headers)
    name = "archnest_http_request_duration_seconds"
    count = value(samples, f"{name}_count", method="GET", route="/healthz", status="2xx")
    assert count is not None and count >= 3
    assert (
        value(samples, f"{name}_bucket", method="GET", route="/healthz", status="2xx", le="+Inf")
        == count
    )
    # The template, never the raw path: the host id is not a label value.
    routes = {lab["route"] for lab, _ in samples[f"{name}_count"]}
    assert "/api/hosts/{host_id}/containers" in routes
    assert not any(missing in r for r in routes)
    assert value(samples, f"{name}_count", route="/api/hosts/{host_id}/containers", status="4xx")


async def test_docker_and_agent_containers_and_hosts(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    c, env = archnest_client, testenv_docker
    tag = secrets.token_hex(3)
    live = f"docker:{await add_engine(c, admin_headers, engine_body(env, 'tcp', f'metrics-{tag}'))}"
    dead_body = {"name": f"metrics-dead-{tag}", "url": "tcp://127.0.0.1:1"}
    dead = f"docker:{await add_engine(c, admin_headers, dead_body)}"
    name = f"metrics-{tag}"
    cid = env.run_container(name)
    try:
        agent_host = f"metrics-agent-{tag}"
        resp = await post_report(c, make_report(agent_host, containers=3))
        assert resp.status == 204, await resp.text()
        agent = f"agent:{agent_host}"

        def ready(s: Samples) -> bool:
            return value(s, "archnest_container_running", host_id=live, container=name) == 1.0

        samples = await scrape_until(c, viewer_headers, ready)
        # The real container on the real engine.
        assert value(samples, "archnest_container_running", host_id=live, container=name) == 1.0
        assert (
            value(
                samples, "archnest_container_state", host_id=live, container=name, state="running"
            )
            == 1.0
        )
        assert value(samples, "archnest_host_up", host_id=live, source="docker") == 1.0
        running = value(samples, "archnest_host_containers", host_id=live, state="running")
        assert running is not None and running >= 1
        assert value(samples, "archnest_host_data_age_seconds", host_id=live) is not None
        # The engine that is not there.
        assert value(samples, "archnest_host_up", host_id=dead, source="docker") == 0.0
        assert not [
            lab for lab, _ in samples["archnest_container_running"] if lab["host_id"] == dead
        ]
        # The agent host: state, its report's stats sample and restart counts.
        assert value(samples, "archnest_host_up", host_id=agent, source="agent") == 1.0
        assert (
            value(samples, "archnest_container_running", host_id=agent, container="svc-000") == 1.0
        )
        assert (
            value(samples, "archnest_container_cpu_percent", host_id=agent, container="svc-000")
            == 0.5
        )
        assert (
            value(
                samples, "archnest_container_memory_usage_bytes", host_id=agent, container="svc-000"
            )
            == 50_000_000
        )
        assert (
            value(
                samples, "archnest_container_memory_limit_bytes", host_id=agent, container="svc-000"
            )
            == 2_147_483_648
        )
        assert (
            value(samples, "archnest_container_restarts_total", host_id=agent, container="svc-001")
            == 1.0
        )
        reports = value(samples, "archnest_agent_reports_total", source="agent")
        assert reports is not None and reports >= 1
        assert samples["archnest_event_subscribers"][0][1] >= 0
        assert samples["archnest_events_published_total"][0][1] >= 0
        # Every container series carries both labels.
        for series in ("archnest_container_state", "archnest_container_running"):
            for lab, _ in samples[series]:
                assert lab["host_id"] and lab["container"], (series, lab)
    finally:
        await asyncio.to_thread(env.docker, "rm", "-f", cid)
    # Gone from the engine, gone from the metrics (nothing is kept per container).
    gone = await scrape_until(
        c,
        viewer_headers,
        lambda s: value(s, "archnest_container_running", host_id=live, container=name) is None,
    )
    assert value(gone, "archnest_container_running", host_id=live, container=name) is None


async def test_docker_cpu_and_memory_come_from_the_stats_collector(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    """With the stats collector, a running container of a docker host has CPU and memory
    series from its latest sample; without it, those series are not made up."""
    c, env = archnest_client, testenv_docker
    tag = secrets.token_hex(3)
    host = f"docker:{await add_engine(c, admin_headers, engine_body(env, 'tcp', f'mcpu-{tag}'))}"
    name = f"mcpu-{tag}"
    cid = env.run_container(name)
    try:
        await c.get(f"/api/containers?all=1&host={host}", headers=viewer_headers)

        def sampled(s: Samples) -> bool:
            return (
                value(s, "archnest_container_memory_usage_bytes", host_id=host, container=name)
                is not None
            )

        samples = await scrape_until(c, viewer_headers, sampled, timeout=30.0)
        assert value(samples, "archnest_container_running", host_id=host, container=name) == 1.0
        mem = value(samples, "archnest_container_memory_usage_bytes", host_id=host, container=name)
        cpu = value(samples, "archnest_container_cpu_percent", host_id=host, container=name)
        if has_collector():
            assert mem is not None and mem > 0
            assert cpu is not None and cpu >= 0
        else:
            assert mem is None and cpu is None
    finally:
        await asyncio.to_thread(env.docker, "rm", "-f", cid)


async def test_health_is_1_healthy_0_unhealthy_absent_without_a_check(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    c, env = archnest_client, testenv_docker
    tag = secrets.token_hex(3)
    host = f"docker:{await add_engine(c, admin_headers, engine_body(env, 'tcp', f'mh-{tag}'))}"
    check = ["--health-interval", "1s", "--health-retries", "1", "--health-timeout", "2s"]
    made = {
        "good": env.run_container(f"mh-good-{tag}", extra_args=["--health-cmd", "true", *check]),
        "bad": env.run_container(f"mh-bad-{tag}", extra_args=["--health-cmd", "false", *check]),
        "none": env.run_container(f"mh-none-{tag}"),
    }
    try:
        await c.get(f"/api/containers?all=1&host={host}", headers=viewer_headers)

        def health(s: Samples, which: str) -> float | None:
            return value(
                s, "archnest_container_health", host_id=host, container=f"mh-{which}-{tag}"
            )

        samples = await scrape_until(
            c,
            viewer_headers,
            lambda s: health(s, "good") == 1.0 and health(s, "bad") == 0.0,
            timeout=30.0,
        )
        assert health(samples, "good") == 1.0
        assert health(samples, "bad") == 0.0
        assert health(samples, "none") is None
        running = value(
            samples, "archnest_container_running", host_id=host, container=f"mh-none-{tag}"
        )
        assert running == 1.0
    finally:
        await asyncio.to_thread(env.docker, "rm", "-f", *made.values())
