"""The real agent script against the real test dockerd and the real server."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from archnest import mask_env

from .conftest import AGENT, TOKEN, Restart, agent_env, run_agent

# The subject is the agent script and its installation, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

SECRET_VALUE = "hunter2-s3cr3t-value"
URL_SECRET = "p4ssw0rd-in-url"


def _docker_env(testenv) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return testenv.docker_cli_env()


def _ps_ids(testenv, all_: bool) -> set[str]:  # type: ignore[no-untyped-def]
    args = ["ps", "-q", "--no-trunc"] + (["-a"] if all_ else [])
    return set(testenv.docker(*args).split())


async def test_agent_once_reports_host_containers_stats_and_masks(
    testenv_docker, archnest_client: TestClient, viewer_headers, wiretap
) -> None:
    te = testenv_docker
    running = te.run_container(
        "agt-web",
        env={
            "DB_PASSWORD": SECRET_VALUE,
            "PLAIN_SETTING": "visible",
            "DATABASE_URL": f"postgres://app:{URL_SECRET}@db:5432/app",
        },
        labels={"com.example.role": "web"},
    )
    te.docker("create", "--name", "agt-created", te.image, "true")
    te.run_container("agt-exited", cmd=("sh", "-c", "exit 3"))
    te.docker("wait", "agt-exited")

    env = agent_env(
        _docker_env(te),
        ARCHNEST_URL=wiretap.url,
        ARCHNEST_AGENT_TOKEN=TOKEN,
        ARCHNEST_AGENT_HOSTNAME="agent-e2e",
    )
    result = await run_agent("--once", env=env)
    assert result.rc == 0, result.stderr
    assert "accepted" in result.stderr

    # What crossed the wire: masked values only, the raw secrets never left.
    wire = bytes(wiretap.received)
    assert b"POST /api/agents/docker/report" in wire
    assert SECRET_VALUE.encode() not in wire
    assert URL_SECRET.encode() not in wire
    assert b'"DB_PASSWORD=****"' in wire
    assert b'"DATABASE_URL=****"' in wire
    assert b'"PLAIN_SETTING=visible"' in wire

    # The host appears, fresh.
    resp = await archnest_client.get("/api/agents/docker/hosts", headers=viewer_headers)
    assert resp.status == 200
    hosts = {h["host"]: h for h in await resp.json()}
    host = hosts["agent-e2e"]
    assert host["stale"] is False
    assert host["agent_version"]
    assert host["last_report_at"].endswith("Z")

    # Containers match `docker ps -a` (ids, names, states) and `docker ps`.
    base = "/api/agents/docker/hosts/agent-e2e/containers"
    all_items = await (await archnest_client.get(base + "?all=1", headers=viewer_headers)).json()
    assert {c["id"] for c in all_items} == _ps_ids(te, all_=True)
    assert host["container_count"] == len(all_items)
    ps = te.docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}")
    expected = {line.split()[0]: line.split()[1:] for line in ps.splitlines()}
    for c in all_items:
        assert [c["name"], c["state"]] == expected[c["id"]]
        assert c["host_id"] == "agent:agent-e2e"
    default_items = await (await archnest_client.get(base, headers=viewer_headers)).json()
    assert {c["id"] for c in default_items} == _ps_ids(te, all_=False)

    # Detail: stats present for the running container, env masked, by name and id prefix.
    by_name = await (await archnest_client.get(base + "/agt-web", headers=viewer_headers)).json()
    by_prefix = await (
        await archnest_client.get(f"{base}/{running[:12]}", headers=viewer_headers)
    ).json()
    assert by_name == by_prefix
    assert by_name["state"] == "running"
    stats = by_name["stats"]
    assert stats is not None
    assert stats["mem_usage_bytes"] > 0 and stats["mem_limit_bytes"] > 0
    assert stats["pids"] >= 1
    env_map = {e["name"]: e for e in by_name["env"]}
    assert env_map["DB_PASSWORD"] == {"name": "DB_PASSWORD", "value": "****", "masked": True}
    assert env_map["DATABASE_URL"]["value"] == "****" and env_map["DATABASE_URL"]["masked"]
    assert env_map["PLAIN_SETTING"] == {
        "name": "PLAIN_SETTING",
        "value": "visible",
        "masked": False,
    }
    assert by_name["labels"]["com.example.role"] == "web"
    exited = await (await archnest_client.get(base + "/agt-exited", headers=viewer_headers)).json()
    assert exited["state"] == "exited" and exited["exit_code"] == 3 and exited["stats"] is None

    # The unified view lists it as a read-only host of source "agent".
    unified = await (await archnest_client.get("/api/hosts", headers=viewer_headers)).json()
    agent_host = next(h for h in unified if h["id"] == "agent:agent-e2e")
    assert agent_host["source"] == "agent" and agent_host["status"] == "ok"
    assert agent_host["capabilities"] == {
        "manage": False,
        "exec": False,
        "logs": False,
        "stats": True,
        "events": False,
    }
    detail = await (
        await archnest_client.get(
            "/api/hosts/agent:agent-e2e/containers/agt-web", headers=viewer_headers
        )
    ).json()
    assert detail["id"] == running


async def test_agent_refused_token_exits_nonzero(
    testenv_docker, archnest_client: TestClient, viewer_headers
) -> None:
    env = agent_env(
        _docker_env(testenv_docker),
        ARCHNEST_URL=str(archnest_client.make_url("")).rstrip("/"),
        ARCHNEST_AGENT_TOKEN="wrong-token",
        ARCHNEST_AGENT_HOSTNAME="agent-refused",
    )
    result = await run_agent("--once", env=env)
    assert result.rc == 3
    assert "401" in result.stderr and "ARCHNEST_AGENT_TOKEN" in result.stderr
    hosts = await (
        await archnest_client.get("/api/agents/docker/hosts", headers=viewer_headers)
    ).json()
    assert hosts == []


async def test_dry_run_prints_valid_json_and_sends_nothing(testenv_docker, wiretap) -> None:
    te = testenv_docker
    te.run_container("agt-dry", env={"SESSION_SECRET": SECRET_VALUE})
    env = agent_env(_docker_env(te), ARCHNEST_URL=wiretap.url, ARCHNEST_AGENT_HOSTNAME="dry")
    result = await run_agent("--dry-run", env=env)  # no token needed
    assert result.rc == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["schema"] == 1 and payload["host"] == "dry"
    assert {c["Id"] for c in payload["containers"]} == _ps_ids(te, all_=True)
    assert SECRET_VALUE not in result.stdout
    assert "SESSION_SECRET=****" in payload["containers"][0]["Config"]["Env"]
    assert payload["host_facts"]["cpus"] >= 1 and payload["engine"]["version"]
    assert wiretap.connections == 0 and not wiretap.received


async def test_missing_jq_is_a_clear_error(tmp_path: Path) -> None:
    # A PATH with everything the script could use except jq.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in (
        "bash",
        "docker",
        "curl",
        "env",
        "date",
        "uname",
        "mktemp",
        "rm",
        "cat",
        "awk",
        "getconf",
        "hostname",
        "timeout",
        "head",
        "sleep",
        "nproc",
    ):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    env = {"PATH": str(bindir), "ARCHNEST_URL": "http://127.0.0.1:9", "ARCHNEST_AGENT_TOKEN": "x"}
    for mode in ("--once", "--dry-run"):
        result = await run_agent(mode, env=env)
        assert result.rc == 2
        assert "jq" in result.stderr and "not found" in result.stderr


async def test_agent_masking_matches_the_server_rules(testenv_docker) -> None:
    """The script's name list equals the core's, and both mask the same entries."""
    script = AGENT.read_text()
    parts = json.loads(re.search(r"SECRET_NAME_PARTS='(\[.*?\])'", script).group(1))
    names = [
        *parts,
        *(p.lower() + "_x" for p in parts),
        "EDITOR",
        "TERM",
        "LANG",
        "PLAIN",
        "MY_KEYRING",
        "author",
        "DB_URL",
    ]
    env = {n: f"value-{i}" for i, n in enumerate(names)}
    env["DB_URL"] = "mysql://root:pw@db/x"
    te = testenv_docker
    te.run_container("agt-mask", env=env)
    result = await run_agent(
        "--dry-run", env=agent_env(_docker_env(te), ARCHNEST_AGENT_HOSTNAME="m")
    )
    assert result.rc == 0, result.stderr
    sent = next(c for c in json.loads(result.stdout)["containers"] if c["Name"] == "/agt-mask")
    agent_masked = {e.partition("=")[0] for e in sent["Config"]["Env"] if e.endswith("=****")}
    server_masked = {
        e["name"] for e in mask_env([f"{k}={v}" for k, v in env.items()]) if e["masked"]
    }
    assert agent_masked == server_masked
    assert {"EDITOR", "TERM", "LANG", "PLAIN"}.isdisjoint(agent_masked)


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed")
    import subprocess

    proc = subprocess.run([shellcheck, str(AGENT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _cmdlines() -> list[bytes]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                continue
    return out


async def test_token_never_appears_in_any_process_argv(testenv_docker) -> None:
    """While curl is sending, no process's argv holds the token (it goes in via stdin)."""
    import asyncio

    token = "argv-probe-token-" + os.urandom(8).hex()
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read, never answer: curl stays alive until timeout
        await reader.read(1 << 20)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = agent_env(
        _docker_env(testenv_docker),
        ARCHNEST_URL=f"http://127.0.0.1:{port}",
        ARCHNEST_AGENT_TOKEN=token,
        ARCHNEST_AGENT_TIMEOUT="4",
        ARCHNEST_AGENT_RETRIES="0",
        ARCHNEST_AGENT_HOSTNAME="argv-probe",
    )
    agent = asyncio.create_task(run_agent("--once", env=env))
    saw_curl = False
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            cmdlines = _cmdlines()
            assert not any(token.encode() in c for c in cmdlines)
            saw_curl = saw_curl or any(c.startswith(b"curl\0") for c in cmdlines)
            if saw_curl and held:
                break
        result = await agent
    finally:
        server.close()
        for w in held:
            w.close()
    assert saw_curl, "curl was never observed running"
    assert result.rc == 4 and token not in result.stderr


async def test_loop_mode_reports_every_interval(
    testenv_docker, archnest_client: TestClient, viewer_headers
) -> None:
    import asyncio

    env = agent_env(
        _docker_env(testenv_docker),
        ARCHNEST_URL=str(archnest_client.make_url("")).rstrip("/"),
        ARCHNEST_AGENT_TOKEN=TOKEN,
        ARCHNEST_AGENT_HOSTNAME="agent-loop",
        ARCHNEST_AGENT_INTERVAL="1",
    )
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(AGENT),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        count = 0
        for _ in range(300):
            await asyncio.sleep(0.1)
            hosts = await (
                await archnest_client.get("/api/agents/docker/hosts", headers=viewer_headers)
            ).json()
            count = hosts[0]["report_count"] if hosts else 0
            if count >= 2:
                break
        assert count >= 2
        assert proc.returncode is None  # still looping
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.parametrize(
    ("setting", "value", "status", "hint"),
    [
        ("ARCHNEST_AGENT_MAX_REPORT_BYTES", "2000", "413", "size limit"),
        ("ARCHNEST_AGENT_TOKEN", None, "503", "disabled"),
    ],
)
async def test_agent_refusals_keep_the_last_good_report(
    testenv_docker,
    archnest_client: TestClient,
    viewer_headers,
    restart_app: Restart,
    setting,
    value,
    status,
    hint,
) -> None:
    testenv_docker.run_container("agt-keep")
    env = agent_env(
        _docker_env(testenv_docker),
        ARCHNEST_URL=str(archnest_client.make_url("")).rstrip("/"),
        ARCHNEST_AGENT_TOKEN=TOKEN,
        ARCHNEST_AGENT_HOSTNAME="agent-keep",
    )
    assert (await run_agent("--once", env=env)).rc == 0
    path = "/api/agents/docker/hosts/agent-keep/containers?all=1"
    before = await (await archnest_client.get(path, headers=viewer_headers)).json()
    hosts_before = await (
        await archnest_client.get("/api/agents/docker/hosts", headers=viewer_headers)
    ).json()

    # The server restarted with the setting changed (settings are read at startup).
    archnest_client = await restart_app(**{setting: value})
    env["ARCHNEST_URL"] = str(archnest_client.make_url("")).rstrip("/")
    testenv_docker.run_container("agt-new")  # the refused report would have shown it
    result = await run_agent("--once", env=env)
    assert result.rc == 3
    assert status in result.stderr and hint in result.stderr

    after = await (await archnest_client.get(path, headers=viewer_headers)).json()
    hosts_after = await (
        await archnest_client.get("/api/agents/docker/hosts", headers=viewer_headers)
    ).json()
    assert after == before and hosts_after == hosts_before
    assert "agt-new" not in {c["name"] for c in after}
