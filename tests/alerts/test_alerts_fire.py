"""Rules firing on real cases against the test dockerd (the ``docker`` source over the
unix socket) and the real agent script, with notices to a local webhook receiver:
an exit with a non-zero code (and its resolution when the container runs again), a
failing healthcheck, an agent that stops reporting, and a snoozed rule that records
but sends nothing. The evaluator runs every second (ARCHNEST_ALERTS_INTERVAL=1)."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings

from tests.agent.conftest import TOKEN, agent_env, run_agent
from tests.alerts.conftest import SECRET, Receiver, add_channel, add_rule, alerts_of
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.testenv import TestEnv

INTERVAL = 1.0
# The live state sees a container change within 2 s (docs/api.md), the evaluator within
# one interval after that, the notice goes out at once.
NOTICE_WITHIN = 2 * INTERVAL + 2.0
# A first start exits 3 after a second; a second start (the marker file is in the
# container's own filesystem by then) runs on.
EXIT_ONCE = "if [ -f /ran-once ]; then exec sleep 3600; fi; touch /ran-once; sleep 1; exit 3"


@pytest.fixture
def archnest_settings(archnest_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    settings = archnest_settings
    if request.node.get_closest_marker("stats_every_second"):
        settings.stats_interval = 1.0
    settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = TOKEN
    settings.plugin_env["ARCHNEST_AGENT_STALE_SECONDS"] = "2"
    return settings


async def test_container_exited_fires_signed_and_resolves(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    receiver: Receiver,
    testenv_docker: TestEnv,
) -> None:
    client, h, env = archnest_client, admin_headers, testenv_docker
    engine = await add_engine(client, h, engine_body(env, "unix", name="alerts-engine"))
    host_id = f"docker:{engine}"
    channel = await add_channel(client, h, receiver)
    rule = await add_rule(
        client,
        h,
        name="exits",
        kind="container_exited",
        scope={"hosts": [host_id]},
        channels=[channel],
    )
    name = f"al-exit-{secrets.token_hex(3)}"
    # A clean exit (code 0) is not an alert.
    clean = f"al-clean-{secrets.token_hex(3)}"
    env.run_container(clean, ["true"])

    env.run_container(name, ["sh", "-c", EXIT_ONCE])
    env.docker("wait", name)
    exited_at = time.monotonic()
    [firing] = await receiver.wait_for(
        lambda: receiver.notices("firing", name), NOTICE_WITHIN + 1.0
    )
    took = time.monotonic() - exited_at
    assert took <= NOTICE_WITHIN, took
    got = next(r for r in receiver.got if r.json().get("state") == "firing")
    assert got.signed_with(SECRET)
    assert firing["rule"] == {"id": rule["id"], "name": "exits", "kind": "container_exited"}
    assert firing["host_id"] == host_id and firing["container"] == name
    assert "code 3" in firing["message"] and firing["at"].endswith("Z")

    [row] = await alerts_of(client, viewer_headers, state="firing")
    assert row["rule_id"] == rule["id"] and row["container"] == name
    assert row["resolved_at"] is None and row["notice_error"] is None

    # Still exited a few rounds later: still one firing notice (one row, one notice).
    await asyncio.sleep(3 * INTERVAL)
    assert len(receiver.notices("firing")) == 1
    assert not receiver.notices(container=clean)

    env.docker("start", name)
    [resolved] = await receiver.wait_for(
        lambda: receiver.notices("resolved", name), NOTICE_WITHIN + 1.0
    )
    assert resolved["rule"]["id"] == rule["id"]
    [row] = await alerts_of(client, viewer_headers)
    assert row["state"] == "resolved" and row["resolved_at"] is not None
    await asyncio.sleep(2 * INTERVAL)
    assert len(receiver.notices("resolved")) == 1 and len(receiver.notices("firing")) == 1


async def test_unhealthy_fires(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    receiver: Receiver,
    testenv_docker: TestEnv,
) -> None:
    client, h, env = archnest_client, admin_headers, testenv_docker
    await add_engine(client, h, engine_body(env, "unix", name="alerts-engine"))
    channel = await add_channel(client, h, receiver)
    await add_rule(
        client, h, kind="unhealthy", scope={"labels": {"watch": "yes"}}, channels=[channel]
    )
    name = f"al-sick-{secrets.token_hex(3)}"
    other = f"al-sick-unwatched-{secrets.token_hex(3)}"
    health = ["--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1"]
    env.run_container(name, ["sleep", "3600"], labels={"watch": "yes"}, extra_args=health)
    env.run_container(other, ["sleep", "3600"], extra_args=health)
    [firing] = await receiver.wait_for(lambda: receiver.notices("firing", name), 20)
    assert "unhealthy" in firing["message"] and firing["rule"]["kind"] == "unhealthy"
    await asyncio.sleep(2 * INTERVAL)
    assert not receiver.notices(container=other)  # out of the rule's scope (labels)


async def test_agent_stale_fires_and_a_snoozed_rule_stays_quiet(
    archnest_client: TestClient,
    archnest_settings: Settings,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    receiver: Receiver,
    testenv_docker: TestEnv,
) -> None:
    client, h, env = archnest_client, admin_headers, testenv_docker
    channel = await add_channel(client, h, receiver)
    host = f"al-agent-{secrets.token_hex(3)}"
    rule = await add_rule(
        client, h, kind="agent_stale", scope={"hosts": [f"agent:{host}"]}, channels=[channel]
    )
    quiet = await add_rule(client, h, name="snoozed", kind="agent_stale", channels=[channel])
    resp = await client.post(
        f"/api/alerts/rules/{quiet['id']}/snooze", json={"minutes": 10}, headers=h
    )
    assert resp.status == 200
    run = await run_agent(
        "--once",
        env=agent_env(
            env.docker_cli_env(),
            ARCHNEST_URL=f"http://127.0.0.1:{client.server.port}",
            ARCHNEST_AGENT_TOKEN=TOKEN,
            ARCHNEST_AGENT_HOSTNAME=host,
        ),
    )
    assert run.rc == 0, run.stderr
    # The agent reported once and stopped: stale after 2 s, then an alert.
    [firing] = await receiver.wait_for(lambda: receiver.notices("firing"), 10)
    assert firing["host_id"] == f"agent:{host}" and firing["container"] is None
    assert firing["rule"]["id"] == rule["id"]
    await asyncio.sleep(2 * INTERVAL)
    # The snoozed rule recorded its alert but sent nothing.
    rows = await alerts_of(client, viewer_headers, state="firing")
    assert {r["rule_id"] for r in rows} == {rule["id"], quiet["id"]}, rows
    assert [n["rule"]["id"] for n in receiver.notices()] == [rule["id"]]

    # Reporting again resolves both; only the rule that sent a firing notice says so.
    run = await run_agent(
        "--once",
        env=agent_env(
            env.docker_cli_env(),
            ARCHNEST_URL=f"http://127.0.0.1:{client.server.port}",
            ARCHNEST_AGENT_TOKEN=TOKEN,
            ARCHNEST_AGENT_HOSTNAME=host,
        ),
    )
    assert run.rc == 0, run.stderr
    await receiver.wait_for(lambda: receiver.notices("resolved"), 10)
    assert [n["rule"]["id"] for n in receiver.notices("resolved")] == [rule["id"]]


async def test_restart_loop_fires_from_the_timeline(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    receiver: Receiver,
    testenv_docker: TestEnv,
) -> None:
    client, h, env = archnest_client, admin_headers, testenv_docker
    await add_engine(client, h, engine_body(env, "unix", name="alerts-engine"))
    channel = await add_channel(client, h, receiver)
    rule = await add_rule(
        client, h, kind="restart_loop", threshold=3, for_seconds=60, channels=[channel]
    )
    steady = f"al-steady-{secrets.token_hex(3)}"
    env.run_container(steady, ["sleep", "3600"], extra_args=["--restart", "always"])
    name = f"al-loop-{secrets.token_hex(3)}"
    # Exits at once; the engine starts it again after 0.1, 0.2, 0.4, 0.8 s...
    env.run_container(name, ["sh", "-c", "exit 1"], extra_args=["--restart", "always"])
    [firing] = await receiver.wait_for(lambda: receiver.notices("firing", name), 20)
    assert firing["rule"]["id"] == rule["id"]
    assert "restarted" in firing["message"] and "in the last 60 s" in firing["message"]
    await asyncio.sleep(2 * INTERVAL)
    assert len(receiver.notices("firing")) == 1  # one row, one notice; steady is quiet


async def test_oom_kill_fires(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    receiver: Receiver,
    testenv_docker: TestEnv,
) -> None:
    client, h, env = archnest_client, admin_headers, testenv_docker
    await add_engine(client, h, engine_body(env, "unix", name="alerts-engine"))
    channel = await add_channel(client, h, receiver)
    await add_rule(client, h, kind="oom", channels=[channel])
    name = f"al-oom-{secrets.token_hex(3)}"
    # A shell that reads 64 MiB into one variable under a 16 MiB limit (no swap).
    hog = "sleep 1; x=$(head -c 67108864 /dev/zero | tr '\\000' a); sleep 3600"
    env.run_container(
        name, ["sh", "-c", hog], extra_args=["--memory", "16m", "--memory-swap", "16m"]
    )
    [firing] = await receiver.wait_for(lambda: receiver.notices("firing", name), 20)
    assert "lack of memory" in firing["message"], firing


@pytest.mark.stats_every_second
async def test_cpu_and_memory_above_fire_from_the_stats_history(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    receiver: Receiver,
    testenv_docker: TestEnv,
) -> None:
    client, h, env = archnest_client, admin_headers, testenv_docker
    await add_engine(client, h, engine_body(env, "unix", name="alerts-engine"))
    channel = await add_channel(client, h, receiver)
    cpu = await add_rule(
        client, h, kind="cpu_above", threshold=2, for_seconds=2, channels=[channel]
    )
    mem = await add_rule(
        client, h, kind="mem_above", threshold=25, for_seconds=0, channels=[channel]
    )
    spin = f"al-spin-{secrets.token_hex(3)}"
    env.run_container(spin, ["sh", "-c", "while :; do :; done"])
    fat = f"al-fat-{secrets.token_hex(3)}"
    # Holds 24 MiB in a shell variable under a 64 MiB limit (about 38 %), idle otherwise.
    # The loop keeps the shell (a last plain command would replace it, and free x).
    hold = "x=$(head -c 25165824 /dev/zero | tr '\\000' a); while :; do sleep 3600; done"
    env.run_container(fat, ["sh", "-c", hold], extra_args=["--memory", "64m"])
    [hot] = await receiver.wait_for(lambda: receiver.notices("firing", spin), 40)
    assert hot["rule"]["id"] == cpu["id"] and "CPU" in hot["message"], hot
    [big] = await receiver.wait_for(lambda: receiver.notices("firing", fat), 40)
    assert big["rule"]["id"] == mem["id"] and "memory" in big["message"], big
    # Neither the idle one nor the spinner is over the other rule.
    assert [n["rule"]["id"] for n in receiver.notices(container=fat)] == [mem["id"]]
    assert mem["id"] not in [n["rule"]["id"] for n in receiver.notices(container=spin)]
    # Both stay above: no flapping between firing and resolved as samples come and go.
    await asyncio.sleep(4)
    assert receiver.notices("resolved") == [], receiver.notices("resolved")
    assert len(receiver.notices("firing")) == 2


async def test_host_down_fires_and_holds_for_seconds(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    receiver: Receiver,
    testenv_docker: TestEnv,
) -> None:
    client, h, env = archnest_client, admin_headers, testenv_docker
    up = await add_engine(client, h, engine_body(env, "unix", name="engine-up"))
    # A closed loopback port: the engine never answers.
    resp = await client.post(
        "/api/docker/hosts", json={"name": "engine-down", "url": "tcp://127.0.0.1:1"}, headers=h
    )
    assert resp.status == 201, await resp.text()
    down = (await resp.json())["id"]
    channel = await add_channel(client, h, receiver)
    added = time.monotonic()
    rule = await add_rule(client, h, kind="host_down", for_seconds=3, channels=[channel])
    [firing] = await receiver.wait_for(lambda: receiver.notices("firing"), 15)
    assert time.monotonic() - added >= 3  # the condition held for for_seconds first
    assert firing["host_id"] == f"docker:{down}" and firing["container"] is None
    assert "engine-down" in firing["message"] and firing["rule"]["id"] == rule["id"]
    await asyncio.sleep(2 * INTERVAL)
    rows = await alerts_of(client, viewer_headers)
    assert [r["host_id"] for r in rows] == [f"docker:{down}"]  # not the engine that answers
    assert f"docker:{up}" not in {n["host_id"] for n in receiver.notices()}
