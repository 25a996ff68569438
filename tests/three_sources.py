"""One real dockerd as a docker, an ssh and an agent host of the app under test: the
tests that compare or follow the three sources on the same containers share this."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.agent.conftest import TOKEN, agent_env, run_agent
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv


async def add_docker_and_ssh(
    client: TestClient, admin: dict[str, str], env: TestEnv, tag: str
) -> tuple[str, str]:
    """The test dockerd by its unix socket and through the test sshd: the host ids."""
    engine = await add_engine(client, admin, engine_body(env, "unix", name=f"{tag}-engine"))
    body = target_payload(env, env.ssh_target, "key", name=f"{tag}-ssh", docker=True)
    resp = await client.post("/api/ssh/targets", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    return f"docker:{engine}", f"ssh:{(await resp.json())['id']}"


async def agent_report(client: TestClient, env: TestEnv, hostname: str) -> str:
    """One run of the real agent (``--once``) reporting the test dockerd as
    ``hostname`` with the shared token (the app's ARCHNEST_AGENT_TOKEN must be TOKEN);
    the host id."""
    run = await run_agent(
        "--once",
        env=agent_env(
            env.docker_cli_env(),
            ARCHNEST_URL=f"http://127.0.0.1:{client.server.port}",
            ARCHNEST_AGENT_TOKEN=TOKEN,
            ARCHNEST_AGENT_HOSTNAME=hostname,
        ),
    )
    assert run.rc == 0, run.stderr
    return f"agent:{hostname}"
