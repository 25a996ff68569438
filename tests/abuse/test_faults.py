"""Faults heal: a service behind the app goes away in the middle of traffic and comes back.

Each fault must end every request it touches cleanly — a JSON error with a 5xx status
(502/503/504 as api.md says), a host's status "error" in ``/api/hosts``, or a live
stream that ends (an ``end``/``error`` event, or the stream closes) — never a hang past
the host timeout and never an internal error. Once the service is back the same
requests succeed again, and the app holds no more file descriptors or connections than
before the fault.

- dockerd stopped (SIGTERM) while follows are open and lists are running, then started
  again on the same data root and sockets; a dockerd of this module's own, so the
  session's daemon keeps serving the other tests.
- The sshd process serving the app's pooled SSH connection killed while a follow is
  open and lists are running; the remote processes of that connection must end.
- PostgreSQL stopped and started (same data directory and port) under concurrent load;
  a cluster of this test's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from archnest import DB_KEY, SETTINGS_KEY, Settings, create_app
from archnest.ssh import SSH_POOL_KEY
from archnest.testing import ADMIN_PASSWORD, make_user_headers

from tests.abuse.resources import (
    descendants,
    fd_count,
    remote_commands,
    tcp_connections_to,
    tcp_states_to,
    unix_connections_to,
)
from tests.agent.payloads import make_report
from tests.docker_tcp.conftest import add_engine
from tests.ssh.conftest import target_payload
from tests.ssh.test_resilience import kill_all, sshd_pids_serving
from tests.testenv import IMAGE, TestEnv, TestEnvError
from tests.testenv.standalone import StandaloneDockerd, StandalonePostgres

# Logs a line every 0.1 s; leaves at once on SIGTERM (dockerd's stop would wait 10 s).
CHATTY = ["sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done"]
# Slack on top of the host timeout for a request that fails (scheduling on a busy CI box).
SLACK = 2.0
AGENT_TOKEN = "fault-agent-token-" + "x" * 24


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _own(factory: Callable[[], Any], what: str) -> Any:
    """Start a service of the test's own; like the session environment, a failure skips
    outside CI and is an error under CI=true."""
    try:
        return factory()
    except (TestEnvError, OSError) as exc:
        if _in_ci():
            raise
        pytest.skip(f"{what} unavailable (scripts/install-test-deps.sh, root?): {exc}")


@pytest.fixture(scope="module")
def own_dockerd() -> Iterator[StandaloneDockerd]:
    daemon = _own(StandaloneDockerd, "a dedicated dockerd")
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def own_postgres() -> Iterator[StandalonePostgres]:
    server = _own(StandalonePostgres, "a dedicated PostgreSQL")
    try:
        yield server
    finally:
        server.close()


# --- requests and their outcomes ------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    started: float
    ended: float
    status: int  # 0: no HTTP answer (connection error), -1: no answer within the bound
    body: Any

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    def clean_error(self) -> bool:
        """A 5xx with api.md's error shape, and not the catch-all internal error."""
        err = self.body.get("error") if isinstance(self.body, dict) else None
        return (
            500 < self.status < 600
            and isinstance(err, dict)
            and bool(err.get("code"))
            and bool(err.get("message"))
            and err.get("code") != "internal_error"
        )

    def __str__(self) -> str:
        body = self.body if len(str(self.body)) < 300 else str(self.body)[:300] + "..."
        return f"{self.kind}: {self.status} after {self.elapsed:.2f}s: {body}"


@asynccontextmanager
async def _http(client: TestClient) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps no connection open between requests, so the app's file
    descriptors can be compared before and after without our own keep-alives in them."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(str(client.make_url("")), connector=connector) as http:
        yield http


async def _request(
    http: aiohttp.ClientSession, kind: str, method: str, path: str, bound: float, **kw: Any
) -> Outcome:
    started = time.monotonic()
    try:
        async with asyncio.timeout(bound):
            async with http.request(method, path, **kw) as resp:
                raw = await resp.read()
                status, ctype = resp.status, resp.headers.get("Content-Type", "")
    except TimeoutError:
        return Outcome(kind, started, time.monotonic(), -1, None)
    except aiohttp.ClientError as exc:
        return Outcome(kind, started, time.monotonic(), 0, repr(exc))
    body: Any = raw.decode(errors="replace")
    if "json" in ctype and raw:
        body = json.loads(raw)
    return Outcome(kind, started, time.monotonic(), status, body)


async def _first_line(resp: aiohttp.ClientResponse, timeout: float = 15) -> dict:
    """The first log line of a follow (SSE ``data:``)."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await resp.content.readline()
            assert raw, "the follow ended before its first line"
            if raw.startswith(b"data: "):
                return json.loads(raw[6:])


async def _to_the_end(resp: aiohttp.ClientResponse) -> str:
    """Read a follow until it ends: its last event name, "eof", or "closed" when the
    server closed the connection in the middle of the chunked body."""
    event = "eof"
    try:
        while raw := await resp.content.readline():
            if raw.startswith(b"event: "):
                event = raw[7:].strip().decode()
    except aiohttp.ClientPayloadError:
        return "closed"
    return event


async def _settle(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check()`` until truthy (a dropped stream is noticed on the next write)."""
    value = check()
    deadline = time.monotonic() + timeout
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = check()
    return value


class Load:
    """Requests repeated by concurrent workers until stopped; every outcome is kept."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def add(self, send: Callable[[], Any], workers: int = 1, pause: float = 0.02) -> None:
        async def loop() -> None:
            while not self._stop.is_set():
                self.outcomes.append(await send())
                await asyncio.sleep(pause)

        self._tasks += [asyncio.create_task(loop()) for _ in range(workers)]

    async def stop(self) -> list[Outcome]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.outcomes


def _names(body: Any) -> list[str]:
    return [c["name"] for c in body] if isinstance(body, list) else []


def _unclean(outcomes: list[Outcome], right: Callable[[Outcome], bool], bound: float) -> list[str]:
    """Outcomes that are neither a right 200 nor a clean error, or came too late."""
    return [
        str(o)
        for o in outcomes
        if o.elapsed > bound or not ((o.status == 200 and right(o)) or o.clean_error())
    ]


# --- dockerd stopped and started ------------------------------------------------------


def _engine_connections(daemon: StandaloneDockerd) -> int:
    return (
        unix_connections_to(daemon.socket)
        + tcp_connections_to(daemon.info.tcp_port)
        + tcp_connections_to(daemon.info.tls_port)
    )


@pytest.mark.db_neutral  # a transport's fault, not the database's
async def test_dockerd_stopped_and_started_mid_follow_and_mid_list(
    archnest_client: TestClient, admin_headers: dict[str, str], own_dockerd: StandaloneDockerd
) -> None:
    daemon = own_dockerd
    timeout = archnest_client.app[SETTINGS_KEY].host_timeout
    bound = timeout + SLACK
    daemon.docker("rm", "-f", "chatty", check=False)
    daemon.docker(
        "run", "-d", "--name", "chatty", "--restart", "always", "--stop-timeout", "2",
        IMAGE, *CHATTY,
    )  # fmt: skip
    client_tls = daemon.tls.client
    bodies = {
        "unix": {"name": "own-unix", "url": daemon.unix_url},
        "tcp": {"name": "own-tcp", "url": daemon.tcp_url},
        "tls": {
            "name": "own-tls",
            "url": daemon.tls_url,
            "tls": {
                "ca": client_tls.ca_pem,
                "cert": client_tls.cert_pem,
                "key": client_tls.key_pem,
            },
        },
    }
    hosts = {
        kind: f"docker:{await add_engine(archnest_client, admin_headers, body)}"
        for kind, body in bodies.items()
    }

    def lists(http: aiohttp.ClientSession, kind: str) -> Callable[[], Any]:
        path = f"/api/hosts/{hosts[kind]}/containers"
        return lambda: _request(http, kind, "GET", path, bound, headers=admin_headers)

    async with _http(archnest_client) as http:
        for kind in hosts:  # warm: each engine's client and connection pool exist
            out = await lists(http, kind)()
            assert out.status == 200 and _names(out.body) == ["chatty"], str(out)
        # ... and each engine's event subscription (the live state) is open: it is
        # part of the baseline, and after the fault it must be open again, not twice.
        query = "&".join(f"host={h}" for h in hosts.values())

        async def all_live() -> bool:
            out = await _request(
                http, "all", "GET", f"/api/containers?{query}", bound, headers=admin_headers
            )
            statuses[:] = [(h["id"], h["status"], h["error"]) for h in out.body["hosts"]]
            return all(status == "ok" for _, status, _ in statuses)

        # A cold machine may take a moment to open three subscriptions and list.
        statuses: list[tuple[str, str, str | None]] = []
        deadline = time.monotonic() + 30
        while not await all_live():
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.5)
        fds_before = await _settle(lambda: fd_count(), 1)
        conns_before = _engine_connections(daemon)

        follows = {}
        for kind, host in hosts.items():
            resp = await http.get(
                f"/api/hosts/{host}/containers/chatty/logs?follow=1&tail=1", headers=admin_headers
            )
            assert resp.status == 200, await resp.text()
            assert (await _first_line(resp))["text"] == "tick"
            follows[kind] = resp

        load = Load()
        for kind in hosts:
            load.add(lists(http, kind))
        await asyncio.sleep(0.5)
        stopping = time.monotonic()
        await asyncio.to_thread(daemon.stop)
        stopped = time.monotonic()

        # Every follow ends on its own: by an event, or the stream closes.
        for kind, resp in follows.items():
            async with asyncio.timeout(bound):
                ending = await _to_the_end(resp)
            assert ending in ("end", "error", "eof", "closed"), (kind, ending)
            resp.close()
        await asyncio.sleep(0.5)  # lists keep going against the stopped daemon
        outcomes = await load.stop()

        # While dockerd shuts down it stops the container first: an empty list is true.
        problems = _unclean(outcomes, lambda o: _names(o.body) in (["chatty"], []), bound)
        assert not problems, "\n".join(problems)
        assert any(o.clean_error() for o in outcomes if o.started >= stopped), (
            "no list met the stopped daemon"
        )
        assert stopped - stopping < 15

        # While it is down: each list, a new follow, and the host index fail cleanly.
        for kind, host in hosts.items():
            out = await lists(http, kind)()
            assert out.clean_error() and out.status in (502, 504), str(out)
            assert out.elapsed <= bound, str(out)
            out = await _request(
                http, kind, "GET", f"/api/hosts/{host}/containers/chatty/logs?follow=1",
                bound, headers=admin_headers,
            )  # fmt: skip
            assert out.clean_error() and out.status in (502, 504), str(out)
        out = await _request(http, "hosts", "GET", "/api/hosts", bound, headers=admin_headers)
        assert out.status == 200 and out.elapsed <= bound, str(out)
        index = {h["id"]: h for h in out.body}
        for host in hosts.values():
            assert index[host]["status"] == "error" and index[host]["error"], index[host]

        # Back again (same data root, sockets and ports): the restart policy brings the
        # container back, and the very first requests succeed.
        await asyncio.to_thread(daemon.start)
        running = await _settle(
            lambda: daemon.docker("inspect", "-f", "{{.State.Running}}", "chatty") == "true", 30
        )
        assert running, "the container did not come back with the daemon"
        for kind in hosts:
            out = await lists(http, kind)()
            assert out.status == 200 and _names(out.body) == ["chatty"], str(out)
        # The host index answers from the watchers, which retry a host in error as soon
        # as it is looked at (each look waits at most 1 s for that attempt).
        deadline = time.monotonic() + 10
        while True:
            out = await _request(http, "hosts", "GET", "/api/hosts", bound, headers=admin_headers)
            index = {h["id"]: h for h in out.body}
            if all(index[h]["status"] == "ok" for h in hosts.values()):
                break
            assert time.monotonic() < deadline, [
                (h["id"], h["status"], h["error"]) for h in out.body
            ]
        for host in hosts.values():
            resp = await http.get(
                f"/api/hosts/{host}/containers/chatty/logs?follow=1&tail=1", headers=admin_headers
            )
            assert resp.status == 200, await resp.text()
            assert (await _first_line(resp))["text"] == "tick"
            resp.close()

    # Nothing of the fault, nor of the follows, is left open. Idle keep-alive
    # connections may outnumber the baseline for a while (the live state lists while the
    # test does): aiohttp closes them after 15 s, so only what outlives that is a leak.
    keepalive = 20.0
    assert await _settle(lambda: _engine_connections(daemon) <= conns_before, keepalive), (
        f"engine connections: {conns_before} before, {_engine_connections(daemon)} after"
    )
    assert await _settle(lambda: fd_count() <= fds_before, keepalive), (
        f"app file descriptors: {fds_before} before, {fd_count()} after"
    )


# --- the SSH connection killed --------------------------------------------------------


@pytest.mark.db_neutral  # a transport's fault, not the database's
async def test_ssh_connection_killed_mid_follow_and_mid_list(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    env = testenv_docker
    name = f"fault-ssh-{secrets.token_hex(3)}"
    env.run_container(name, CHATTY)
    body = target_payload(env, env.ssh_target, "key", name=name, docker=True)
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == 201, await r.text()
    target = (await r.json())["id"]
    host = f"ssh:{target}"
    pool = archnest_client.app[SSH_POOL_KEY]
    bound = archnest_client.app[SETTINGS_KEY].host_timeout + SLACK
    sshd_port = env.ssh_target.port
    list_path = f"/api/hosts/{host}/containers"
    follow_path = f"{list_path}/{name}/logs?follow=1&tail=1"

    def following() -> list[str]:
        return [c for c in remote_commands(env.ssh_target.pid, "docker logs") if name in c]

    def lists(http: aiohttp.ClientSession) -> Callable[[], Any]:
        return lambda: _request(http, "list", "GET", list_path, bound, headers=admin_headers)

    async with _http(archnest_client) as http:
        out = await lists(http)()
        assert out.status == 200 and name in _names(out.body), str(out)
        info = pool.connection_info(target)
        assert info is not None and info["connects"] == 1 and info["local_port"]
        fds_before = fd_count()
        conns_before = tcp_connections_to(sshd_port)

        follow = await http.get(follow_path, headers=admin_headers)
        assert follow.status == 200, await follow.text()
        assert (await _first_line(follow))["text"] == "tick"
        assert len(following()) == 1

        # The sshd processes of the pooled connection, and what runs under them on the
        # host (the followed `docker logs -f`, the Engine API relay).
        served_by = sshd_pids_serving(sshd_port, info["local_port"])
        assert served_by, "no sshd process found for the pooled connection"
        doomed = served_by | {pid for p in served_by for pid, _ in descendants(p)}

        load = Load()
        load.add(lists(http), workers=2)
        await asyncio.sleep(0.3)
        killed = time.monotonic()
        kill_all(served_by)

        async with asyncio.timeout(bound):
            ending = await _to_the_end(follow)
        assert ending in ("end", "error", "eof", "closed"), ending
        follow.close()
        await asyncio.sleep(1.0)  # lists keep going across the reconnect
        outcomes = await load.stop()

        problems = _unclean(outcomes, lambda o: name in _names(o.body), bound)
        assert not problems, "\n".join(problems)
        assert any(o.started >= killed for o in outcomes)
        # The pool reconnected, and the next list (a read, retried once) succeeds.
        out = await lists(http)()
        assert out.status == 200 and name in _names(out.body), str(out)
        assert pool.connection_info(target)["connects"] >= 2

        # Nothing of the killed connection runs on the host any more.
        def leftovers() -> list[int]:
            return [pid for pid in doomed if Path(f"/proc/{pid}").exists() and _alive(pid)]

        assert await _settle(lambda: not leftovers()), (
            f"processes of the killed connection still running: {leftovers()}"
        )

        # A new follow works on the new connection, and ends with its remote process.
        follow = await http.get(follow_path, headers=admin_headers)
        assert follow.status == 200, await follow.text()
        assert (await _first_line(follow))["text"] == "tick"
        follow.close()

    assert await _settle(lambda: not following()), f"still on the host: {following()}"
    assert await _settle(lambda: tcp_connections_to(sshd_port) <= conns_before), (
        f"connections to sshd: {conns_before} before, {tcp_connections_to(sshd_port)} after"
    )
    assert await _settle(lambda: fd_count() <= fds_before), (
        f"app file descriptors: {fds_before} before, {fd_count()} after"
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- PostgreSQL restarted under load --------------------------------------------------


async def test_postgres_restarted_under_load(
    aiohttp_client: Callable[..., Any], tmp_path: Path, own_postgres: StandalonePostgres
) -> None:
    pg = own_postgres
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg.url,
        secret_key="fault-test-secret-key",
        admin_password=ADMIN_PASSWORD,
        host_timeout=3.0,
        plugin_env={"ARCHNEST_AGENT_TOKEN": AGENT_TOKEN, "ARCHNEST_ADD_LOCAL_DOCKER": "0"},
    )
    client: TestClient = await aiohttp_client(create_app(settings))
    headers = await make_user_headers(client, "loader", "admin")
    # An engine nobody listens on: the host is in the database (what the index must
    # show) and its probe fails at once without any engine connection to count.
    engine = await add_engine(
        client, headers, {"name": "nowhere", "url": f"unix://{tmp_path}/absent.sock"}
    )
    host = f"docker:{engine}"
    origin = {"Origin": str(client.make_url("")).rstrip("/")}
    report = json.dumps(make_report("fault-agent", 5))
    bound = 5.0  # "a few seconds": the connect timeout of the pool is 5 s too

    def senders(http: aiohttp.ClientSession) -> dict[str, tuple[Callable[[], Any], int]]:
        """Each kind of request, and how many workers send it under load."""
        get = {"headers": headers}
        agent_headers = {
            "Authorization": f"Bearer {AGENT_TOKEN}",
            "Content-Type": "application/json",
        }
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        return {
            "hosts": (lambda: _request(http, "hosts", "GET", "/api/hosts", bound, **get), 2),
            "containers": (
                lambda: _request(http, "containers", "GET", "/api/containers", bound, **get),
                2,
            ),
            "engines": (
                lambda: _request(http, "engines", "GET", "/api/docker/hosts", bound, **get),
                2,
            ),
            "login": (
                lambda: _request(
                    http, "login", "POST", "/api/auth/login", bound, headers=origin, json=login
                ),
                1,
            ),
            "agent": (
                lambda: _request(
                    http, "agent", "POST", "/api/agents/docker/report", bound,
                    data=report, headers=agent_headers,
                ),
                2,
            ),
        }  # fmt: skip

    def start_load(http: aiohttp.ClientSession) -> Load:
        load = Load()
        for kind, (send, workers) in senders(http).items():
            # Password hashing is slow on purpose: one sign-in at a time, now and then.
            load.add(send, workers, pause=0.2 if kind == "login" else 0.02)
        return load

    def truthful(o: Outcome) -> bool:
        """A success that says what is true (a host index without the configured host,
        served while the database is away, would not be)."""
        if o.status not in (200, 204):
            return False
        if o.kind == "hosts":
            return any(h.get("id") == host for h in o.body)
        if o.kind == "containers":
            return any(h.get("id") == host for h in o.body.get("hosts", []))
        if o.kind == "engines":
            return any(e.get("id") == engine for e in o.body)
        return True

    async with _http(client) as http:
        load = start_load(http)
        await asyncio.sleep(1.5)  # the pool grows to its working size
        warm = await load.stop()
    assert warm and all(truthful(o) for o in warm), "\n".join(map(str, warm[:5]))
    fds_before = await _settle(lambda: fd_count(), 1)
    pg_before = sum(tcp_states_to(pg.port).values())

    async with _http(client) as http:
        load = start_load(http)
        await asyncio.sleep(1.0)
        stopping = time.monotonic()
        await asyncio.to_thread(pg.stop)
        stopped = time.monotonic()
        await asyncio.sleep(3.0)
        starting = time.monotonic()
        await asyncio.to_thread(pg.start)
        started = time.monotonic()
        await asyncio.sleep(2.0)
        outcomes = await load.stop()

        # Always: a truthful success or a clean 5xx, in a few seconds, never a crash.
        problems = [
            str(o) for o in outcomes if not (truthful(o) or o.clean_error()) or o.elapsed > bound
        ]
        assert not problems, "\n".join(problems)
        outage = [o for o in outcomes if o.started >= stopped and o.ended <= starting]
        assert len(outage) > 20, f"only {len(outage)} requests during the outage"
        unavailable = [o for o in outage if o.clean_error()]
        assert {o.body["error"]["code"] for o in unavailable} == {"database_unavailable"}
        assert {o.status for o in unavailable} == {503}
        assert {o.kind for o in unavailable} >= {"engines", "login", "agent"}, Counter(
            o.kind for o in unavailable
        )
        # Back: every request that began after the restart succeeded, of every kind.
        after = [o for o in outcomes if o.started >= started]
        failed = [str(o) for o in after if not truthful(o)]
        assert not failed, "\n".join(failed)
        assert {o.kind for o in after} == {"hosts", "containers", "engines", "login", "agent"}
        out = await _request(http, "health", "GET", "/healthz", bound)
        assert out.status == 200, str(out)
        assert stopped - stopping < 10

    # A quiet restart (nothing asked while it was down, as at night): every pooled
    # connection died with the server, and still the first request of each kind after
    # it succeeds.
    await asyncio.to_thread(pg.stop)
    await asyncio.to_thread(pg.start)
    async with _http(client) as http:
        firsts = [await send() for send, _ in senders(http).values()]
    failed = [str(o) for o in firsts if not truthful(o)]
    assert not failed, "\n".join(failed)

    # The connections that died with the server were closed, not left half-open, and
    # nothing else was left behind.
    states = await _settle(lambda: (s := tcp_states_to(pg.port)) and set(s) == {"01"} and s, 5)
    assert states, f"sockets to PostgreSQL: {tcp_states_to(pg.port)}"
    pg_after = sum(states.values())
    # Every one of them is the pool's (idle, or held like the agent store's writer's).
    pool = client.app[DB_KEY].engine.pool
    assert pg_after == pool.checkedin() + pool.checkedout(), (states, pool.status())
    assert await _settle(lambda: fd_count() - pg_after <= fds_before - pg_before), (
        f"app file descriptors besides PostgreSQL: {fds_before - pg_before} before, "
        f"{fd_count() - pg_after} after"
    )
