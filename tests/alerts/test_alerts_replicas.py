"""Two replicas (two apps, two servers) on one PostgreSQL database, both running the
evaluator: one alert, one firing notice and one resolved notice.

Only the holder of the advisory lock evaluates; the transitions are safe without it
too, which the second test shows by running both evaluators' rounds at once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from archnest import Settings, create_app
from archnest.alerts import ALERTS_KEY
from archnest.testing import ADMIN_PASSWORD, make_user_headers

from tests.alerts.conftest import SECRET, Receiver, add_channel, add_rule, alerts_of
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.testenv import TestEnv

EXIT_ONCE = "if [ -f /ran-once ]; then exec sleep 3600; fi; touch /ran-once; sleep 1; exit 3"


def _replica(tmp_path: Path, url: str, n: int) -> web.Application:
    return create_app(
        Settings(
            data_dir=tmp_path / f"data-{n}",
            database_url=url,
            secret_key="one-secret-key-for-every-replica",
            admin_password=ADMIN_PASSWORD,
            alerts_interval=1.0,
            plugin_env={"ARCHNEST_ADD_LOCAL_DOCKER": "0"},
        )
    )


@pytest.fixture
async def replicas(
    tmp_path: Path,
    testenv_pg_url: str,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> tuple[TestClient, TestClient]:
    first = await aiohttp_client(_replica(tmp_path, testenv_pg_url, 1))
    second = await aiohttp_client(_replica(tmp_path, testenv_pg_url, 2))
    return first, second


async def test_two_replicas_send_one_notice(
    replicas: tuple[TestClient, TestClient], receiver: Receiver, testenv_docker: TestEnv
) -> None:
    first, second = replicas
    env = testenv_docker
    h = await make_user_headers(first, "alice", "admin")
    engine = await add_engine(first, h, engine_body(env, "unix", name="replica-engine"))
    # The channel made on one replica is readable on the other: one secret key.
    channel = await add_channel(second, h, receiver)
    rule = await add_rule(first, h, kind="container_exited", channels=[channel])
    name = f"al-rep-{secrets.token_hex(3)}"
    env.run_container(name, ["sh", "-c", EXIT_ONCE])
    env.docker("wait", name)
    await receiver.wait_for(lambda: receiver.notices("firing", name), 10)
    await asyncio.sleep(4)  # several rounds of both evaluators
    assert len(receiver.notices("firing")) == 1, receiver.got
    [got] = [r for r in receiver.got if r.json()["state"] == "firing"]
    assert got.signed_with(SECRET)
    for client in replicas:
        [row] = await alerts_of(client, h)
        assert row["rule_id"] == rule["id"] and row["host_id"] == f"docker:{engine}"
    # Both evaluators run; one of them leads.
    engines = [c.app[ALERTS_KEY] for c in replicas]
    assert all(e.rounds >= 3 for e in engines)
    leaders = [e.leader._conn is not None for e in engines]
    assert sorted(leaders) == [False, True], leaders

    env.docker("start", name)
    await receiver.wait_for(lambda: receiver.notices("resolved", name), 10)
    await asyncio.sleep(3)
    assert len(receiver.notices("resolved")) == 1, receiver.got


async def test_transitions_are_safe_without_the_lock(
    replicas: tuple[TestClient, TestClient], receiver: Receiver, testenv_docker: TestEnv
) -> None:
    """Both evaluators believe they lead and run their rounds at the same moment: the
    unique firing row and the conditional resolve still let one notice through."""
    first = replicas[0]
    env = testenv_docker
    h = await make_user_headers(first, "alice", "admin")
    await add_engine(first, h, engine_body(env, "unix", name="replica-engine"))
    channel = await add_channel(first, h, receiver)
    await add_rule(first, h, kind="container_exited", channels=[channel])
    engines = [c.app[ALERTS_KEY] for c in replicas]
    for e in engines:  # stop the loops; rounds are run by hand below
        assert e._task is not None
        e._task.cancel()
        await asyncio.gather(e._task, return_exceptions=True)

        async def always(_engine: object) -> bool:
            return True

        e.leader.held = always  # type: ignore[method-assign]
    name = f"al-race-{secrets.token_hex(3)}"
    env.run_container(name, ["sh", "-c", EXIT_ONCE])
    env.docker("wait", name)
    await asyncio.sleep(2.5)  # both live states have seen the exit
    for _ in range(3):
        await asyncio.gather(*(e.round() for e in engines))
    await receiver.wait_for(lambda: receiver.notices("firing", name), 5)
    await asyncio.sleep(1)
    assert len(receiver.notices("firing")) == 1, receiver.got
    env.docker("start", name)
    await asyncio.sleep(2.5)
    for _ in range(3):
        await asyncio.gather(*(e.round() for e in engines))
    await receiver.wait_for(lambda: receiver.notices("resolved", name), 5)
    await asyncio.sleep(1)
    assert len(receiver.notices("resolved")) == 1, receiver.got
