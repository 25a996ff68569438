"""The agent's --install / --uninstall (real bash, under ARCHNEST_INSTALL_ROOT) and
"Install agent over SSH" into the test sshd's host, reporting to the real app."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from archnest.testing import make_user_headers

from .conftest import AGENT, Restart, agent_env, run_agent
from .install_helpers import PROG, env_values, installed, remote_root, stop_agent

# The subject is the agent script and its installation, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

API = "/api/agents/docker/enrollments"


async def wait_for_report(client: TestClient, headers: dict, host: str, seconds: float) -> dict:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        hosts = await (await client.get("/api/agents/docker/hosts", headers=headers)).json()
        found = {h["host"]: h for h in hosts}.get(host)
        if found is not None or asyncio.get_running_loop().time() > deadline:
            assert found is not None, f"{host} did not report within {seconds}s"
            return found
        await asyncio.sleep(0.2)


async def test_install_writes_files_starts_detached_and_uninstalls(
    testenv_docker, archnest_client: TestClient, admin_headers, viewer_headers, tmp_path: Path
) -> None:
    c = archnest_client
    token = (await (await c.post(API, json={"host": "inst-1"}, headers=admin_headers)).json())[
        "token"
    ]
    root = tmp_path / "root"
    env = agent_env(
        testenv_docker.docker_cli_env(),
        ARCHNEST_URL=str(c.make_url("")).rstrip("/"),
        ARCHNEST_AGENT_TOKEN=token,
        ARCHNEST_AGENT_HOSTNAME="inst-1",
        ARCHNEST_AGENT_INTERVAL="1",
        ARCHNEST_INSTALL_ROOT=str(root),
    )
    paths = installed(root)
    try:
        result = await run_agent("--install", env=env)
        assert result.rc == 0, result.stderr
        assert "systemd is not running" in result.stdout and "detached" in result.stdout
        assert token not in result.stdout + result.stderr
        assert paths["bin"].read_bytes() == AGENT.read_bytes()
        assert stat.S_IMODE(paths["bin"].stat().st_mode) == 0o755
        assert stat.S_IMODE(paths["env"].stat().st_mode) == 0o600
        unit = (await (await c.get("/agent/archnest-docker-agent.service")).read()).decode()
        assert paths["unit"].read_text() == unit
        values = env_values(paths["env"])
        assert (
            values["ARCHNEST_AGENT_TOKEN"] == token
            and values["ARCHNEST_AGENT_HOSTNAME"] == "inst-1"
        )
        assert values["ARCHNEST_AGENT_INTERVAL"] == "1"
        assert values["DOCKER_HOST"] == testenv_docker.docker_unix_url
        first = await wait_for_report(c, viewer_headers, "inst-1", 20)
        # The detached loop keeps reporting after the installer has exited.
        for _ in range(50):
            await asyncio.sleep(0.2)
            now = (await wait_for_report(c, viewer_headers, "inst-1", 1))["report_count"]
            if now > first["report_count"]:
                break
        assert now > first["report_count"]
        pid = int(paths["pid"].read_text())
        assert PROG in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        # The token is not in the agent's argv (it reads the env file).
        assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()

        result = await run_agent("--uninstall", env={**env, "ARCHNEST_AGENT_TOKEN": ""})
        assert result.rc == 0, result.stderr
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            await asyncio.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists()
        assert not any(p.exists() for p in paths.values())
    finally:
        stop_agent(root)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"DOCKER_HOST": "unix:///x;reboot"}, "DOCKER_HOST must be"),
        ({"ARCHNEST_URL": "http://h/$(id)"}, "ARCHNEST_URL must be"),
        ({"ARCHNEST_AGENT_TOKEN": "a'b"}, "bearer token"),
        ({"ARCHNEST_AGENT_HOSTNAME": "-x"}, "not valid"),
        ({"ARCHNEST_INSTALL_ROOT": "relative/dir"}, "absolute path"),
    ],
)
async def test_install_refuses_bad_values_before_writing(
    tmp_path: Path, extra: dict[str, str], words: str
) -> None:
    root = tmp_path / "root"
    env = {
        "PATH": os.environ["PATH"],
        "ARCHNEST_URL": "http://127.0.0.1:9",
        "ARCHNEST_AGENT_TOKEN": "tok",
        "ARCHNEST_AGENT_HOSTNAME": "h",
        "ARCHNEST_INSTALL_ROOT": str(root),
        **extra,
    }
    result = await run_agent("--install", env=env)
    assert result.rc == 2 and words in result.stderr, result.stderr
    assert not root.exists()


async def test_env_file_is_parsed_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    env_file = tmp_path / "agent.env"
    env_file.write_text(
        f"ARCHNEST_URL=http://127.0.0.1:9\nARCHNEST_AGENT_TOKEN=$(touch {marker})\n"
    )
    result = await run_agent(
        "--once", "--env-file", str(env_file), env={"PATH": os.environ["PATH"]}
    )
    assert result.rc == 2 and "bearer token" in result.stderr
    assert not marker.exists()
    env_file.write_text("LD_PRELOAD=/tmp/x.so\n")
    result = await run_agent(
        "--once", "--env-file", str(env_file), env={"PATH": os.environ["PATH"]}
    )
    assert result.rc == 2 and "unknown setting LD_PRELOAD" in result.stderr


async def test_install_over_ssh_reports_within_one_interval(testenv, restart_app: Restart) -> None:
    with remote_root(testenv.ssh.username) as root:
        c = await restart_app(ARCHNEST_AGENT_SSH_INSTALL_ROOT=str(root), ARCHNEST_AGENT_TOKEN=None)
        admin = await make_user_headers(c, "ops", "admin")
        target = testenv.ssh_target
        r = await c.post(
            "/api/ssh/targets",
            json={
                "name": "web 01",
                "host": target.host,
                "port": target.port,
                "username": testenv.ssh.username,
                "auth": "key",
                "private_key": testenv.ssh.private_key,
                "host_keys": [target.host_key],
            },
            headers=admin,
        )
        assert r.status == 201, await r.text()
        target_id = (await r.json())["id"]
        body = {"target_id": target_id, "docker_host": testenv.docker_unix_url, "interval": 2}
        started = asyncio.get_running_loop().time()
        r = await c.post("/api/agents/docker/ssh-install", json=body, headers=admin)
        assert r.status == 200, await r.text()
        answer = await r.json()
        assert answer["host"] == "web-01" and answer["installed"] is True
        assert "detached" in answer["output"]
        paths = installed(root)
        assert stat.S_IMODE(paths["env"].stat().st_mode) == 0o600
        assert paths["env"].stat().st_uid == pwd.getpwnam(testenv.ssh.username).pw_uid
        values = env_values(paths["env"])
        assert (
            values["DOCKER_HOST"] == testenv.docker_unix_url
            and values["ARCHNEST_AGENT_INTERVAL"] == "2"
        )
        assert values["ARCHNEST_AGENT_TOKEN"] not in answer["output"]
        host = await wait_for_report(c, admin, "web-01", 2 + 5)
        assert asyncio.get_running_loop().time() - started < 30
        all_hosts = await (await c.get("/api/hosts", headers=admin)).json()
        assert "agent:web-01" in {h["id"] for h in all_hosts}
        assert host["container_count"] >= 0
        listed = await (await c.get(API, headers=admin)).json()
        assert [(e["host"], e["status"]) for e in listed] == [("web-01", "ok")]

        # Again: the enrollment gets a new token, the new agent replaces the old one.
        old_pid = int(paths["pid"].read_text())
        r = await c.post("/api/agents/docker/ssh-install", json=body, headers=admin)
        assert r.status == 200, await r.text()
        assert env_values(paths["env"])["ARCHNEST_AGENT_TOKEN"] != values["ARCHNEST_AGENT_TOKEN"]
        for _ in range(50):
            if not Path(f"/proc/{old_pid}").exists():
                break
            await asyncio.sleep(0.1)
        assert not Path(f"/proc/{old_pid}").exists()


async def test_install_over_ssh_failure_is_a_worded_502(testenv, restart_app: Restart) -> None:
    # An install root the SSH user cannot write: the installer fails, the API says why.
    c = await restart_app(ARCHNEST_AGENT_SSH_INSTALL_ROOT="/proc/archnest-no-such-dir")
    admin = await make_user_headers(c, "ops", "admin")
    target = testenv.ssh_target
    r = await c.post(
        "/api/ssh/targets",
        json={
            "name": "t1",
            "host": target.host,
            "port": target.port,
            "username": testenv.ssh.username,
            "auth": "key",
            "private_key": testenv.ssh.private_key,
            "host_keys": [target.host_key],
        },
        headers=admin,
    )
    tid = (await r.json())["id"]
    r = await c.post(
        "/api/agents/docker/ssh-install", json={"target_id": tid, "host": "h1"}, headers=admin
    )
    assert r.status == 502, await r.text()
    err = (await r.json())["error"]
    assert err["code"] == "agent_install_failed" and "cannot create" in err["message"]
