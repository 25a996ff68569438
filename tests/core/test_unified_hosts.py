"""The unified /api/hosts view over several sources: concurrency, timeouts, per-host errors."""

import asyncio
import time
from types import SimpleNamespace

import pytest
from archnest import (
    Capabilities,
    ContainerDetail,
    ContainerSummary,
    HostError,
    HostInfo,
    HostSource,
    LogLine,
    create_app,
    hookimpl,
)


class FakeishSource(HostSource):
    """A pure-logic source: exercises the core's fan-out, not any Docker transport."""

    name = "t"
    label = "Test"
    capabilities = Capabilities(manage=True, logs=True)

    def __init__(self):
        self.calls: list[tuple] = []

    async def list_hosts(self):
        self.calls.append(("hosts",))
        return [
            HostInfo(id=self.host_id(k), source=self.name, name=k, capabilities=self.capabilities)
            for k in ("good", "slow", "broken")
        ]

    async def probe(self, key):
        self.calls.append(("probe", key))
        if key == "slow":
            await asyncio.sleep(60)
        if key == "broken":
            raise HostError("connection refused by the engine")

    async def list_containers(self, key, all=False):
        self.calls.append(("list", key, all))
        if key == "slow":
            await asyncio.sleep(60)
        return [
            ContainerSummary(
                id="a" * 64, name="web", image="img", state="running", host_id=self.host_id(key)
            )
        ]

    async def get_container(self, key, ref):
        self.calls.append(("get", key, ref))
        return ContainerDetail(
            id="a" * 64, name=ref, image="img", state="running", host_id=self.host_id(key)
        )

    async def logs(self, key, ref, options):
        return [LogLine(text=f"line {i}") for i in range(options.tail or 0)]

    async def follow_logs(self, key, ref, options):
        yield None
        for i in range(3):
            yield LogLine(text=f"live {i}")

    async def action(self, key, ref, action, *, force=False):
        self.calls.append(("action", key, ref, action, force))


class OtherSource(FakeishSource):
    name = "u"


@pytest.fixture
async def client(aiohttp_client, archnest_settings):
    source, other = FakeishSource(), OtherSource()

    @hookimpl
    def archnest_host_sources(app):
        return [source, other]

    archnest_settings.host_timeout = 0.5
    # These sources stream no events; the live state's background sweep (which reads
    # every source's hosts) would only blur which calls a request made.
    archnest_settings.live = False
    plugin = SimpleNamespace(__name__="t_plugin", archnest_host_sources=archnest_host_sources)
    c = await aiohttp_client(create_app(archnest_settings, extra_plugins=[plugin]))
    c.source, c.other = source, other
    return c


async def test_hosts_are_probed_concurrently_and_fail_alone(client, viewer_headers):
    t0 = time.monotonic()
    r = await client.get("/api/hosts", headers=viewer_headers)
    elapsed = time.monotonic() - t0
    hosts = {h["id"]: h for h in await r.json() if h["source"] == "t"}
    assert r.status == 200
    assert hosts["t:good"]["status"] == "ok" and hosts["t:good"]["error"] is None
    assert hosts["t:broken"]["status"] == "error"
    assert "connection refused" in hosts["t:broken"]["error"]
    assert hosts["t:slow"]["status"] == "error" and "no answer within" in hosts["t:slow"]["error"]
    assert hosts["t:good"]["capabilities"] == {
        "manage": True,
        "exec": False,
        "logs": True,
        "stats": False,
        "events": False,
    }
    # Not a timing assertion on speed: a sequential walk would simply never finish in 60s.
    assert elapsed < 30


async def test_slow_host_is_504_with_error_shape(client, viewer_headers):
    r = await client.get("/api/hosts/t:slow/containers", headers=viewer_headers)
    assert r.status == 504
    assert (await r.json())["error"]["code"] == "host_timeout"
    r = await client.get("/api/hosts/t:good/containers?all=1", headers=viewer_headers)
    assert r.status == 200 and (await r.json())[0]["name"] == "web"
    assert ("list", "good", True) in client.source.calls


async def test_unknown_host_is_404(client, viewer_headers):
    for host in ("nope:1", "t", "x:"):
        r = await client.get(f"/api/hosts/{host}/containers", headers=viewer_headers)
        assert r.status == 404, host


@pytest.mark.parametrize("ref", ["a;b", "-rf", ".x", "a b", "x" * 200, "$(id)", "_x"])
async def test_bad_refs_are_400_before_the_source_is_called(client, viewer_headers, ref):
    from urllib.parse import quote

    r = await client.get(
        f"/api/hosts/t:good/containers/{quote(ref, safe='')}", headers=viewer_headers
    )
    assert r.status == 400
    assert not any(c[0] == "get" for c in client.source.calls)


async def test_logs_json_text_and_sse(client, viewer_headers):
    r = await client.get("/api/hosts/t:good/containers/web/logs?tail=3", headers=viewer_headers)
    assert [ln["text"] for ln in (await r.json())["lines"]] == ["line 0", "line 1", "line 2"]
    r = await client.get(
        "/api/hosts/t:good/containers/web/logs?tail=2&format=text", headers=viewer_headers
    )
    assert await r.text() == "line 0\nline 1\n"
    assert "attachment" in r.headers["Content-Disposition"]
    r = await client.get("/api/hosts/t:good/containers/web/logs?follow=1", headers=viewer_headers)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    body = await r.text()
    assert body.count("data: {") == 4 and "live 2" in body and "event: end" in body
    r = await client.get("/api/hosts/t:good/containers/web/logs?tail=abc", headers=viewer_headers)
    assert r.status == 400


async def test_actions_are_admin_only_and_validated(client, admin_headers, viewer_headers):
    r = await client.post("/api/hosts/t:good/containers/web/stop", headers=viewer_headers)
    assert r.status == 403
    r = await client.post("/api/hosts/t:good/containers/web/explode", headers=admin_headers)
    assert r.status == 400
    r = await client.post("/api/hosts/t:good/containers/web/remove?force=1", headers=admin_headers)
    assert r.status == 200
    assert ("action", "good", "web", "remove", True) in client.source.calls


async def test_all_containers_in_one_call_with_per_host_errors(client, viewer_headers):
    r = await client.get("/api/containers?source=t&all=1", headers=viewer_headers)
    assert r.status == 200
    body = await r.json()
    hosts = {h["id"]: h for h in body["hosts"]}
    assert set(hosts) == {"t:good", "t:slow", "t:broken"}
    assert hosts["t:good"]["status"] == "ok"
    assert hosts["t:slow"]["status"] == "error" and "no answer within" in hosts["t:slow"]["error"]
    # "broken" fails its probe only; listing it works, so it is ok here.
    assert [c["host_id"] for c in body["containers"]] == ["t:good", "t:broken"]
    assert ("list", "good", True) in client.source.calls

    r = await client.get("/api/containers?host=t:good", headers=viewer_headers)
    body = await r.json()
    assert [h["id"] for h in body["hosts"]] == ["t:good"] and len(body["containers"]) == 1
    r = await client.get("/api/containers?source=nope", headers=viewer_headers)
    assert await r.json() == {"hosts": [], "containers": []}
    assert (await client.get("/api/containers")).status == 401


async def test_chosen_hosts_only_ask_their_own_sources(client, viewer_headers):
    r = await client.get("/api/containers?host=t:good", headers=viewer_headers)
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    assert [c["host_id"] for c in (await r.json())["containers"]] == ["t:good"]
    assert client.source.calls.count(("hosts",)) == 1
    assert ("hosts",) not in client.other.calls  # a host list is a database query
    r = await client.get("/api/containers?host=u:good&host=t:good", headers=viewer_headers)
    assert sorted(c["host_id"] for c in (await r.json())["containers"]) == ["t:good", "u:good"]
    r = await client.get("/api/containers?host=u:good&source=t", headers=viewer_headers)
    assert await r.json() == {"hosts": [], "containers": []}
    r = await client.get("/api/containers?source=u", headers=viewer_headers)
    assert {h["id"] for h in (await r.json())["hosts"]} == {"u:good", "u:slow", "u:broken"}


async def test_a_call_cancelled_while_waiting_for_the_fanout_gate_is_released_quietly() -> None:
    """A probe queued behind the fan-out bound whose request is cancelled never ran:
    it is closed, not left for the garbage collector's "never awaited" warning."""
    from aiohttp import web
    from archnest.hosts import _bounded
    from archnest.keys import SETTINGS_KEY

    app = web.Application()
    app[SETTINGS_KEY] = SimpleNamespace(fanout_concurrency=1)
    run = _bounded(app)

    async def call() -> int:
        await asyncio.sleep(0.2)
        return 1

    queued = call()
    first = asyncio.ensure_future(run(call()))
    second = asyncio.ensure_future(run(queued))
    await asyncio.sleep(0.05)
    second.cancel()
    assert await first == 1
    with pytest.raises(asyncio.CancelledError):
        await second
    assert queued.cr_frame is None  # closed without having run
