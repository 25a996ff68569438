"""The ssh source's container events against the real sshd and dockerd: through the
pooled connection's own ``dial-stdio`` process (the Engine API) or ``docker events``
(the CLI fallback); closed subscriptions end their remote process; a dropped
connection ends the subscription with an error; the channels it holds take no slot
of requests or follows."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from archnest import SOURCES_KEY, HostError, TooManyRequests
from archnest.ssh import SSH_POOL_KEY

from tests.ssh.test_engine_fast_path import descendants
from tests.ssh.test_resilience import kill_all, sshd_pids_serving
from tests.testenv import TestEnv

# The subject is an SSH transport (the sshd and dockerd behind it), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

FAST, CLI = "1", "0"


@pytest.fixture
def engine_api() -> str:
    return FAST


@pytest.fixture
def archnest_settings(archnest_settings, engine_api):  # type: ignore[no-untyped-def]
    archnest_settings.plugin_env["ARCHNEST_SSH_ENGINE_API"] = engine_api
    # The app's own live state would subscribe too: these tests hold the only ones.
    archnest_settings.live = False
    return archnest_settings


@pytest.fixture
def source(archnest_client):  # type: ignore[no-untyped-def]
    return archnest_client.app[SOURCES_KEY]["ssh"]


class Watch:
    """One subscription read by a task, as the core reads it."""

    def __init__(self, source: Any, key: str) -> None:
        self.events = source.events(key)
        self.queue: asyncio.Queue[dict] = asyncio.Queue()
        self.subscribed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.events:
            if event is None:
                self.subscribed.set()
            else:
                await self.queue.put(event)

    async def started(self) -> None:
        done, _ = await asyncio.wait(
            {self.task, asyncio.ensure_future(self.subscribed.wait())},
            timeout=10,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self.task in done:
            self.task.result()  # the error, if it failed
        assert self.subscribed.is_set(), "not subscribed within 10 s"

    async def expect(self, action: str, cid: str, after_ns: int, within: float = 2.0) -> dict:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            left = deadline - loop.time()
            try:
                event = await asyncio.wait_for(self.queue.get(), max(left, 0.001))
            except TimeoutError:
                raise AssertionError(f"no {action} event of {cid[:12]} within {within} s") from None
            # A replay (the CLI's --since) may bring earlier ones: only later events count.
            if (
                event.get("Type") == "container"
                and event.get("Action") == action
                and (event.get("Actor") or {}).get("ID") == cid
                and event.get("timeNano", 0) >= after_ns
            ):
                return event

    async def cancel(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def __aenter__(self) -> Watch:
        try:
            await self.started()
        except BaseException:
            await self.cancel()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()


async def settle(check: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def remote(env: TestEnv, pool, target: int, needle: str) -> list[int]:  # type: ignore[no-untyped-def]
    """Processes below the sshd serving the target's pooled connection whose command
    line has ``needle``."""
    info = pool.connection_info(target)
    if info is None:
        return []
    sshd = sshd_pids_serving(env.ssh_target.port, info["local_port"])
    return [p for p, args in descendants(sshd).items() if needle in args]


async def act(env: TestEnv, *args: str) -> int:
    """Run ``docker args`` (not blocking the loop); the time before, in ns."""
    before = time.time_ns()
    await asyncio.to_thread(env.docker, *args)
    return before


async def pause_unpause_stop_start(env: TestEnv, watch: Watch, cid: str, name: str) -> None:
    for args, action in (
        (("pause", cid), "pause"),
        (("unpause", cid), "unpause"),
        (("stop", "-t", "1", cid), "stop"),
        (("start", cid), "start"),
    ):
        before = await act(env, *args)
        event = await watch.expect(action, cid, before)
        assert event["Actor"]["Attributes"]["name"] == name


@pytest.mark.parametrize("engine_api", [FAST, CLI])
async def test_events_arrive_and_a_closed_subscription_ends_its_process(
    chain_target, testenv_docker, source, engine_api
) -> None:
    env = testenv_docker
    name = f"ev-{secrets.token_hex(4)}"  # the daemon may be shared: a name of its own
    cid = env.run_container(name)
    t = await chain_target(0, "key")
    pool = source.pool
    needle = "dial-stdio" if engine_api == FAST else "docker events"

    async with Watch(source, str(t["id"])) as watch:
        await pause_unpause_stop_start(env, watch, cid, name)
        assert source.engine.event_opens == (1 if engine_api == FAST else 0)
        assert source.cli_runs == 0  # the CLI fallback is a stream of its own, not a command
        assert len(remote(env, pool, t["id"], needle)) == 1
        # A background channel: no command or stream slot, however long it runs.
        info = pool.connection_info(t["id"])
        assert info["active"] == 0 and info["streams"] == 0
        await watch.cancel()  # what the core does when it stops watching
    assert await settle(lambda: not remote(env, pool, t["id"], needle)), "remote process left"
    assert pool.connection_info(t["id"]) is not None  # the connection itself stays

    # aclose() after the first events, as the core does on shutdown.
    events = source.events(str(t["id"]))
    try:
        assert await asyncio.wait_for(anext(events), 10) is None
        before = await act(env, "pause", cid)
        while True:
            event = await asyncio.wait_for(anext(events), 2)
            if event["Action"] == "pause" and event["Actor"]["ID"] == cid:
                if event["timeNano"] >= before:
                    break
        assert len(remote(env, pool, t["id"], needle)) == 1
    finally:
        await events.aclose()
    assert await settle(lambda: not remote(env, pool, t["id"], needle)), "remote process left"


async def test_events_through_jump_hosts(chain_target, testenv_docker, source) -> None:
    env = testenv_docker
    cid = env.run_container(f"ev-{secrets.token_hex(4)}")
    t = await chain_target(2, "key")
    async with Watch(source, str(t["id"])) as watch:
        before = await act(env, "pause", cid)
        await watch.expect("pause", cid, before)


@pytest.mark.parametrize("engine_api", [FAST, CLI])
async def test_killed_connection_ends_the_subscription_with_an_error(
    chain_target, testenv_docker, source, engine_api
) -> None:
    env = testenv_docker
    t = await chain_target(0, "key")
    pool = source.pool
    async with Watch(source, str(t["id"])) as watch:
        info = pool.connection_info(t["id"])
        sshd = sshd_pids_serving(env.ssh_target.port, info["local_port"])
        assert sshd
        kill_all(sshd)
        done, _ = await asyncio.wait({watch.task}, timeout=10)
        assert done, "the subscription hangs after its connection died"
        with pytest.raises(HostError):
            watch.task.result()


@pytest.mark.parametrize("engine_api", [FAST, CLI])
async def test_sudo_target_subscribes_through_sudo(make_target, testenv_docker, source, engine_api):
    # The test user may not sudo (or sudo is absent): the error must name sudo, which
    # proves `sudo -n docker events` ran (after `sudo -n docker system dial-stdio`
    # failed on the fast path), and it must come as an error, not a silent end.
    t = await make_target(name="with-sudo", docker=True, sudo=True)
    events = source.events(str(t["id"]))
    with pytest.raises(HostError) as err:
        await asyncio.wait_for(anext(events), 15)
    assert err.value.code == "sudo_failed", err.value.message
    assert source.engine.failures == (1 if engine_api == FAST else 0)
    assert source.pool.connection_info(t["id"])["streams"] == 0


@pytest.fixture
def short_idle(archnest_settings):  # type: ignore[no-untyped-def]
    archnest_settings.ssh_idle_seconds = 1
    return archnest_settings


async def test_a_subscription_keeps_its_connection_from_the_idle_close(
    short_idle, chain_target, testenv_docker, source
) -> None:
    env = testenv_docker
    cid = env.run_container(f"ev-{secrets.token_hex(4)}")
    t = await chain_target(0, "key")
    pool = source.pool
    assert pool.idle_seconds == 1
    async with Watch(source, str(t["id"])) as watch:
        await asyncio.sleep(3.5)  # several idle periods without an event
        assert not watch.task.done()
        assert pool.connection_info(t["id"])["connects"] == 1
        before = await act(env, "pause", cid)
        await watch.expect("pause", cid, before)
    # Without a subscription the connection is idle again and closes.
    assert await settle(lambda: pool.connection_info(t["id"]) is None, within=6)


@pytest.fixture
def default_sshd(testenv: TestEnv):  # type: ignore[no-untyped-def]
    """An sshd with OpenSSH's default MaxSessions (10), which the pool's defaults match
    (the shared test sshd allows 100)."""
    from tests.testenv import sshd
    from tests.testenv.procs import stop_group

    base = Path(testenv.tmpdir)
    name = f"sessions{secrets.token_hex(3)}"
    endpoint = sshd.start_sshd(
        base / "ssh", name, testenv.docker_socket, base / "logs", max_sessions=10
    )
    try:
        yield endpoint
    finally:
        stop_group(endpoint.pid, grace=5)


async def test_subscription_takes_no_slot_and_fits_within_max_sessions(
    archnest_client, admin_headers, make_target, testenv_docker, source, default_sshd
) -> None:
    env = testenv_docker
    cid = env.run_container(f"ev-{secrets.token_hex(4)}")
    t = await make_target(default_sshd, "key", name="ten-sessions", docker=True)
    pool = archnest_client.app[SSH_POOL_KEY]
    assert pool.max_channels == 10
    url = f"/api/docker-ssh/hosts/{t['id']}/containers"
    held = []
    async with Watch(source, str(t["id"])) as watch:
        try:
            # The Engine API stream opens with a list.
            r = await archnest_client.get(url, headers=admin_headers)
            assert r.status == 200 and cid in [c["id"] for c in await r.json()]
            # Every stream slot taken (what open follows and terminals do) ...
            for _ in range(pool.max_streams):
                held.append(await pool.open_process(t["id"], "sleep 60"))
            with pytest.raises(TooManyRequests):
                await pool.open_process(t["id"], "sleep 60")
            info = pool.connection_info(t["id"])
            assert info["streams"] == pool.max_streams  # the subscription is not one
            # ... and every command slot at once: sshd refuses none of these channels
            # (a refusal is a HostError ssh_channel_refused), so the subscription never
            # pushes the connection past MaxSessions.
            runs = [pool.run(t["id"], "sleep 1") for _ in range(pool.max_commands)]
            for result in await asyncio.gather(*runs):
                assert result.ok, result
            before = await act(env, "pause", cid)
            await watch.expect("pause", cid, before)
            r = await archnest_client.get(url, headers=admin_headers)
            assert r.status == 200, await r.text()
            assert not watch.task.done()
        finally:
            for proc in held:
                await proc.close()
