"""The container diff (GET /api/diff) on real containers of the real dockerd, read
through different sources (the Engine API source, the ssh source, and the real agent
script's report): the real differences, identical fields same, secrets compared
without ever being revealed, and each side's failure named."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings
from archnest.secrets import masked_env_digests

from tests.agent.conftest import TOKEN, agent_env, post_report, run_agent
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv

SECRET_A, SECRET_B = "db-pass-alpha-7f3k", "db-pass-bravo-9q2x"
SHARED_TOKEN = "api-token-shared-55aa"
SECRETS = (SECRET_A, SECRET_B, SHARED_TOKEN)
COMMON_ENV = {"SHARED": "1", "API_TOKEN": SHARED_TOKEN}
ENV_A = {**COMMON_ENV, "APP_MODE": "blue", "DB_PASSWORD": SECRET_A, "ONLY_A": "x"}
ENV_B = {**COMMON_ENV, "APP_MODE": "green", "DB_PASSWORD": SECRET_B}
LABELS_A = {"tier": "web", "owner": "team-a", "only.a": "1"}
LABELS_B = {"tier": "web", "owner": "team-b"}


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = TOKEN  # agent ingest on
    return archnest_settings


@pytest.fixture
async def hosts(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> dict[str, str]:
    """The one test dockerd as a docker host and as an ssh host."""
    engine = await add_engine(
        archnest_client, admin_headers, engine_body(testenv_docker, "unix", name="diff-engine")
    )
    body = target_payload(testenv_docker, testenv_docker.ssh_target, "key", docker=True)
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == 201, await r.text()
    return {"docker": f"docker:{engine}", "ssh": f"ssh:{(await r.json())['id']}"}


@pytest.fixture
def pair(testenv_docker: TestEnv) -> tuple[str, str]:
    env = testenv_docker
    env.run_container("diff-a", env=ENV_A, labels=LABELS_A, ports=["8080:80"])
    env.run_container("diff-b", env=ENV_B, labels=LABELS_B, ports=["9090:80"])
    return "diff-a", "diff-b"


async def get_diff(client: TestClient, headers: dict[str, str], a: str, b: str):  # type: ignore[no-untyped-def]
    return await client.get("/api/diff", params={"a": a, "b": b}, headers=headers)


def by_field(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["field"]: f for f in body["fields"]}


def assert_no_secret(text: str, values: tuple[str, ...] = SECRETS) -> None:
    """Neither a value nor a digest of it (plain, or keyed as the server keeps it)."""
    for value in values:
        assert value not in text
        assert hashlib.sha256(value.encode()).hexdigest() not in text
    for digest in masked_env_digests([f"DB_PASSWORD={v}" for v in values]).values():
        assert digest not in text
    for value in values:
        (digest,) = masked_env_digests([f"X_TOKEN={value}"]).values()
        assert digest not in text


async def test_docker_vs_ssh_lists_the_real_differences(
    archnest_client: TestClient,
    viewer_headers: dict[str, str],
    hosts: dict[str, str],
    pair: tuple[str, str],
) -> None:
    a, b = f"{hosts['docker']}/{pair[0]}", f"{hosts['ssh']}/{pair[1]}"
    r = await get_diff(archnest_client, viewer_headers, a, b)
    text = await r.text()
    assert r.status == 200, text
    assert_no_secret(text)
    body = json.loads(text)
    assert body["a"]["host_id"] == hosts["docker"] and body["a"]["name"] == "diff-a"
    assert body["b"]["host_id"] == hosts["ssh"] and body["b"]["name"] == "diff-b"
    f = by_field(body)
    # What is the same on both (same image, command, user, policy, network mode).
    for name in ("image", "image_id", "command", "user", "restart_policy", "state", "networks"):
        assert f[name]["same"] is True, f[name]
        assert f[name]["a"] == f[name]["b"]
    assert f["env.SHARED"] == {"field": "env.SHARED", "a": "1", "b": "1", "same": True}
    assert f["labels.tier"]["same"] is True
    # What differs, with both values.
    assert f["env.APP_MODE"] == {"field": "env.APP_MODE", "a": "blue", "b": "green", "same": False}
    assert f["env.ONLY_A"] == {"field": "env.ONLY_A", "a": "x", "b": None, "same": False}
    assert f["labels.owner"] == {
        "field": "labels.owner",
        "a": "team-a",
        "b": "team-b",
        "same": False,
    }
    assert f["labels.only.a"]["same"] is False and f["labels.only.a"]["b"] is None
    # The test daemon runs without a bridge: Docker reports no port of either container
    # (NetworkSettings.Ports is empty whatever -p said), so ports read the same here.
    assert f["ports"] == {"field": "ports", "a": [], "b": [], "same": True}
    # Secrets: compared, never shown.
    assert f["env.DB_PASSWORD"] == {
        "field": "env.DB_PASSWORD",
        "a": "****",
        "b": "****",
        "same": False,
    }
    assert f["env.API_TOKEN"] == {"field": "env.API_TOKEN", "a": "****", "b": "****", "same": True}
    # Every field that differs is listed as different, and only those.
    assert {k for k, v in f.items() if v["same"] is False} == {
        "env.APP_MODE",
        "env.DB_PASSWORD",
        "env.ONLY_A",
        "labels.owner",
        "labels.only.a",
    }


async def test_same_container_through_two_sources_is_all_same(
    archnest_client: TestClient,
    viewer_headers: dict[str, str],
    hosts: dict[str, str],
    pair: tuple[str, str],
) -> None:
    r = await get_diff(
        archnest_client,
        viewer_headers,
        f"{hosts['docker']}/{pair[0]}",
        f"{hosts['ssh']}/{pair[0]}",
    )
    text = await r.text()
    assert r.status == 200, text
    assert_no_secret(text)
    fields = json.loads(text)["fields"]
    assert [f["field"] for f in fields if f["same"] is not True] == []
    assert {"env.DB_PASSWORD", "env.API_TOKEN", "ports", "mounts"} <= {f["field"] for f in fields}


async def test_agent_secrets_cannot_be_told_and_stay_hidden(
    archnest_client: TestClient,
    viewer_headers: dict[str, str],
    hosts: dict[str, str],
    pair: tuple[str, str],
    testenv_docker: TestEnv,
) -> None:
    # The real agent script reads the real dockerd; its report (values masked on the
    # host) is what the server stores.
    env = agent_env(testenv_docker.docker_cli_env(), ARCHNEST_AGENT_HOSTNAME="diff-agent")
    run = await run_agent("--dry-run", env=env)
    assert run.rc == 0, run.stderr
    assert_no_secret(run.stdout)
    r = await post_report(archnest_client, json.loads(run.stdout))
    assert r.status == 204, await r.text()
    r = await get_diff(
        archnest_client,
        viewer_headers,
        f"agent:diff-agent/{pair[0]}",
        f"{hosts['docker']}/{pair[0]}",
    )
    text = await r.text()
    assert r.status == 200, text
    assert_no_secret(text)
    f = by_field(json.loads(text))
    # Masked on the host before sending: nothing to compare, and said so.
    assert f["env.DB_PASSWORD"] == {
        "field": "env.DB_PASSWORD",
        "a": "****",
        "b": "****",
        "same": None,
    }
    assert f["env.API_TOKEN"]["same"] is None
    for name in ("image", "command", "env.SHARED", "env.APP_MODE", "labels.owner"):
        assert f[name]["same"] is True, f[name]


@pytest.mark.parametrize(
    ("a", "b", "field"),
    [
        ("", "docker:1/x", "a"),
        ("docker:1", "docker:1/x", "a"),
        ("docker:1/x", "nohost/x", "b"),
        ("docker:1/x", "docker:1/bad ref", "b"),
        ("docker:1/x", "docker:1/--format={{json .}}", "b"),
    ],
)
async def test_bad_sides_are_400_naming_the_side(
    archnest_client: TestClient, viewer_headers: dict[str, str], a: str, b: str, field: str
) -> None:
    r = await get_diff(archnest_client, viewer_headers, a, b)
    assert r.status == 400
    assert (await r.json())["error"]["field"] == field


async def test_a_failing_side_is_named(
    archnest_client: TestClient,
    viewer_headers: dict[str, str],
    hosts: dict[str, str],
    pair: tuple[str, str],
) -> None:
    good = f"{hosts['docker']}/{pair[0]}"
    r = await get_diff(archnest_client, viewer_headers, good, f"{hosts['ssh']}/no-such-box")
    err = (await r.json())["error"]
    assert r.status == 404 and err["code"] == "unknown_container" and err["field"] == "b"
    assert err["message"].startswith(f"b ({hosts['ssh']}/no-such-box): ")
    r = await get_diff(archnest_client, viewer_headers, "docker:999/x", good)
    err = (await r.json())["error"]
    assert r.status == 404 and err["code"] == "unknown_host" and err["field"] == "a"
    r = await get_diff(archnest_client, viewer_headers, "docker:999/x", "ssh:999/y")
    err = (await r.json())["error"]
    assert err["field"] == "a" and "a (docker:999/x)" in err["message"]
    assert "b (ssh:999/y)" in err["message"]
