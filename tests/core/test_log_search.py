"""GET /api/logs/search against the real dockerd, reached as a docker host (Engine API)
and as an ssh host: a marker found across containers and hosts, regex, bad regex,
limit, container and project filters, roles, and readers ended when the client leaves."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from archnest.keys import STREAMS_KEY
from archnest.ssh import SSH_POOL_KEY

from tests.abuse.resources import remote_commands
from tests.docker_tcp.conftest import add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv


def echo(lines: list[str]) -> list[str]:
    return ["sh", "-c", "".join(f"echo '{ln}'; " for ln in lines) + "echo err-line >&2"]


@pytest.fixture
def fleet(testenv: TestEnv) -> Iterator[dict]:
    """Three finished containers of one compose project (unique names), two carrying
    the marker; removed afterwards (only these: the dockerd is shared)."""
    tag = secrets.token_hex(4)
    marker, project = f"marker-{tag}", f"ls-{tag}"
    names = [f"ls-{tag}-{i}" for i in range(3)]
    labels = {"com.docker.compose.project": project}
    try:
        testenv.run_container(names[0], echo(["a", f"x {marker} #1", "b"]), labels=labels)
        testenv.run_container(names[1], echo([f"{marker} #2", "c", f"{marker} #3"]), labels=labels)
        testenv.run_container(names[2], echo(["nothing here"]), labels=labels)
        for name in names:
            testenv.docker("wait", name)
        yield {"marker": marker, "project": project, "names": names}
    finally:
        testenv.docker("rm", "-f", *names, check=False)


@pytest.fixture
async def hosts(archnest_client: TestClient, admin_headers: dict[str, str], testenv: TestEnv):
    body = engine_body(testenv, "unix", name="search-engine")
    docker = f"docker:{await add_engine(archnest_client, admin_headers, body)}"
    body = target_payload(testenv, testenv.ssh_target, "key", name="search-ssh", docker=True)
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == 201, await r.text()
    return {"docker": docker, "ssh": f"ssh:{(await r.json())['id']}"}


async def search(client: TestClient, headers: dict, **params) -> tuple[list[dict], dict]:  # type: ignore[no-untyped-def]
    query = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
    r = await client.get("/api/logs/search", params=query, headers=headers)
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in (await r.text()).splitlines()]
    assert lines and "text" not in lines[-1]
    return lines[:-1], lines[-1]


async def slots_settle(client: TestClient) -> bool:
    for _ in range(100):
        if client.app[STREAMS_KEY].count("follow") == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_marker_found_across_containers_and_hosts(
    archnest_client: TestClient, viewer_headers: dict, hosts: dict, fleet: dict
) -> None:
    rows, summary = await search(
        archnest_client,
        viewer_headers,
        q=fleet["marker"].upper(),  # case-insensitive by default
        host=list(hosts.values()),
        project=fleet["project"],
    )
    assert summary["done"] is True and summary["errors"] == [], summary
    assert summary["matched"] == 6 and summary["containers"] == 6
    # Every line of the 3 containers on both hosts was read: 4+4+2 lines each.
    assert summary["scanned"] == 2 * (4 + 4 + 2)
    got = sorted((r["host_id"], r["container"], r["text"]) for r in rows)
    n0, n1, _ = fleet["names"]
    m = fleet["marker"]
    want = [(h, n0, f"x {m} #1") for h in hosts.values()]
    want += [(h, n1, f"{m} #{i}") for h in hosts.values() for i in (2, 3)]
    assert got == sorted(want)
    for r in rows:
        assert set(r) == {"host_id", "container", "ts", "stream", "text"}
        assert r["stream"] == "stdout" and r["ts"].endswith("Z")
    # Case-sensitive: the upper-case text is not in any line.
    rows, summary = await search(
        archnest_client,
        viewer_headers,
        q=m.upper(),
        case="1",
        project=fleet["project"],
        host=list(hosts.values()),
    )
    assert rows == [] and summary["done"]
    # stderr lines are searched too.
    rows, _ = await search(
        archnest_client,
        viewer_headers,
        q="err-line",
        project=fleet["project"],
        host=hosts["ssh"],
    )
    assert len(rows) == 3 and {r["stream"] for r in rows} == {"stderr"}
    assert await slots_settle(archnest_client)


async def test_regex_filters_and_limit(
    archnest_client: TestClient, viewer_headers: dict, hosts: dict, fleet: dict
) -> None:
    c, h, m = archnest_client, viewer_headers, fleet["marker"]
    rows, summary = await search(
        c, h, q=rf"^{m} #[23]$", regex="1", host=hosts["docker"], project=fleet["project"]
    )
    assert sorted(r["text"] for r in rows) == [f"{m} #2", f"{m} #3"] and summary["done"]
    # Container filter (exact names): only that container's lines.
    rows, summary = await search(c, h, q=m, host=hosts["ssh"], container=fleet["names"][0])
    assert [r["text"] for r in rows] == [f"x {m} #1"]
    assert summary["containers"] == 1
    # A project that no container has: nothing read at all.
    rows, summary = await search(c, h, q=m, project=f"none-{m}")
    assert rows == [] and summary == {
        "done": True,
        "scanned": 0,
        "matched": 0,
        "containers": 0,
        "errors": [],
    }
    # Limit: 6 matches exist, 2 are sent, and the summary says the search was cut.
    rows, summary = await search(
        c, h, q=m, limit="2", host=list(hosts.values()), project=fleet["project"]
    )
    assert len(rows) == 2
    assert summary["truncated"] is True and summary["reason"] == "limit"
    assert summary["matched"] == 2
    # An unknown host is an error entry, not a failed search.
    rows, summary = await search(
        c, h, q=m, host=["docker:999999", hosts["docker"]], project=fleet["project"]
    )
    assert len(rows) == 3
    assert summary["errors"] == [
        {"host_id": "docker:999999", "code": "unknown_host", "message": "no such host"}
    ]
    assert await slots_settle(c)


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"q": "a(", "regex": "1"}, "invalid_regex", "q"),
        ({"q": "(a+)+$", "regex": "1"}, "invalid_regex", "q"),
        ({"q": "(x)\\1", "regex": "1"}, "invalid_regex", "q"),
        ({"q": "x" * 501}, "invalid_query", "q"),
        ({}, "invalid_query", "q"),
        ({"q": "x", "limit": "0"}, "invalid_query", "limit"),
        ({"q": "x", "limit": "10001"}, "invalid_query", "limit"),
        ({"q": "x", "since": "yesterday"}, "invalid_query", "since"),
        ({"q": "x", "since": "20", "until": "10"}, "invalid_query", "until"),
        ({"q": "x", "container": "a;b"}, "invalid_ref", "container"),
        ({"q": "x", "host": "nohost"}, "invalid_query", "host"),
    ],
)
async def test_bad_options_are_400_naming_the_field(
    archnest_client: TestClient, viewer_headers: dict, params: dict, code: str, field: str
) -> None:
    r = await archnest_client.get("/api/logs/search", params=params, headers=viewer_headers)
    assert r.status == 400, await r.text()
    error = (await r.json())["error"]
    assert error["code"] == code and error["field"] == field, error
    if code == "invalid_regex" and params["q"] == "a(":
        assert "position 1" in error["message"]


async def test_viewer_allowed_anonymous_refused(
    archnest_client: TestClient, viewer_headers: dict
) -> None:
    r = await archnest_client.get("/api/logs/search", params={"q": "x", "project": "none"})
    assert r.status == 401
    r = await archnest_client.get(
        "/api/logs/search", params={"q": "x", "project": "none"}, headers=viewer_headers
    )
    assert r.status == 200
    r = await archnest_client.get("/logs/search", headers=viewer_headers)
    assert r.status == 200 and "Search logs" in await r.text()


def big_log(env: TestEnv, base: str) -> str:
    """A finished container with 1.5M lines; made again if another test run removed it
    meanwhile (the dockerd is shared, and some fixtures remove every container)."""
    for attempt in range(5):
        name = f"{base}-{attempt}"
        env.run_container(name, ["sh", "-c", "seq 1 1500000 | sed 's/^/hit /'"])
        if env.docker("wait", name, timeout=120, check=False) == "0":
            return name
        env.docker("rm", "-f", name, check=False)
    raise AssertionError(f"could not keep a container {base}-N")


async def test_client_leaving_ends_every_reader(
    archnest_client: TestClient, viewer_headers: dict, hosts: dict, testenv: TestEnv
) -> None:
    """Big logs on both hosts; the client reads the first results and leaves: every
    stream slot, SSH channel and remote `docker logs` is given back."""
    tag = secrets.token_hex(4)
    names: list[str] = []
    try:
        for i in range(2):
            names.append(big_log(testenv, f"ls-big-{tag}-{i}"))
        pool = archnest_client.app[SSH_POOL_KEY]
        ssh_id = int(hosts["ssh"].partition(":")[2])
        url = str(archnest_client.make_url("/api/logs/search"))
        params = [
            ("q", "^hit (1|1499999)$"),
            ("regex", "1"),
            ("limit", "10000"),
            ("host", hosts["docker"]),
            ("host", hosts["ssh"]),
        ] + [("container", n) for n in names]
        async with aiohttp.ClientSession() as http:
            resp = await http.get(url, params=params, headers=viewer_headers)
            assert resp.status == 200
            first = json.loads(await resp.content.readline())
            assert first["text"].startswith("hit ")
            # Readers are open on both hosts now.
            assert archnest_client.app[STREAMS_KEY].count("follow") >= 1
            resp.close()  # the client goes away mid-search
        assert await slots_settle(archnest_client)
        for _ in range(100):
            if pool.connection_info(ssh_id)["streams"] == 0:
                break
            await asyncio.sleep(0.05)
        assert pool.connection_info(ssh_id)["streams"] == 0
        sshd = testenv.ssh_target.pid
        for _ in range(100):
            if not remote_commands(sshd, "docker logs"):
                break
            await asyncio.sleep(0.05)
        assert not remote_commands(sshd, "docker logs")
    finally:
        testenv.docker("rm", "-f", *names, check=False)
