"""Part (d) of bench/fleet.py: many containers on ONE real engine (the test dockerd),
the host's page partial timed through the app.

The containers are made straight through the Engine API, 16 calls at a time (what
parallel ``docker create`` runs amount to), most created only and some started, all
labelled ``archnest.bench.fleet`` and removed at the end. The test dockerd is shared:
a test elsewhere may remove every container at any moment (the test fixtures clean the
engine after each test). So each timed round is framed by two counts of the bench's
containers through the app's own list: a round counts only when all of them were there
before and after it; otherwise the missing ones are made again and the round repeated
(``discarded_rounds`` and ``top_ups`` in the result).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

from bench._common import MS, proc_cpu, stats, timed_get

LABEL = "archnest.bench.fleet"
BUDGET_SECONDS = 300.0  # to collect the valid rounds, top-ups included


class EngineCallFailed(RuntimeError):
    """An Engine API call answered with an unexpected status."""


def engine_session(url: str) -> tuple[aiohttp.ClientSession, str]:
    """A session straight to the engine at ``url`` (unix:// or tcp://) and its base."""
    if url.startswith("unix://"):
        connector = aiohttp.UnixConnector(path=url[len("unix://") :])
        return aiohttp.ClientSession(connector=connector), "http://docker"
    if url.startswith("tcp://"):
        return aiohttp.ClientSession(), "http://" + url[len("tcp://") :]
    raise SystemExit("--docker-url must be unix:// or tcp:// (plain) for the bench")


async def engine_calls(
    raw: aiohttp.ClientSession, calls: list[tuple[str, str, dict | None]], ok: tuple[int, ...]
) -> list[Any]:
    """Engine API calls, 16 at a time; raises EngineCallFailed after all have ended."""
    gate = asyncio.Semaphore(16)

    async def one(method: str, url: str, body: dict | None) -> Any:
        async with gate, raw.request(method, url, json=body) as resp:
            data = await resp.read()
            if resp.status not in ok:
                raise EngineCallFailed(f"{method} {url}: {resp.status} {data[:200]!r}")
            return json.loads(data) if data[:1] == b"{" else None

    results = await asyncio.gather(*(one(*c) for c in calls), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise EngineCallFailed(f"{len(failed)} of {len(calls)} calls failed: {failed[0]}")
    return results


async def remove(raw: aiohttp.ClientSession, eng: str, ids: list[str]) -> None:
    """Remove ``ids`` (gone already or going: fine)."""
    calls = [("DELETE", f"{eng}/containers/{i}?force=1", None) for i in ids]
    await engine_calls(raw, calls, (204, 404, 409))


async def labelled(raw: aiohttp.ClientSession, eng: str) -> dict[str, str]:
    """The bench's containers on the engine: name -> id."""
    flt = json.dumps({"label": [LABEL]})
    async with raw.get(eng + "/containers/json", params={"all": "1", "filters": flt}) as r:
        return {c["Names"][0].lstrip("/"): c["Id"] for c in await r.json()}


async def top_up(raw: aiohttp.ClientSession, eng: str, args: argparse.Namespace) -> int:
    """Create (and start the first ``real_running`` of) the bench's containers that are
    missing; returns how many were made. Calls that lose a race with a removal elsewhere
    are left for the next top-up."""
    have = await labelled(raw, eng)
    creates, start_names = [], []
    for i in range(args.real_containers):
        name = f"fleet-bench-{i:04d}"
        if name in have:
            continue
        labels = {LABEL: "1"}
        if i % 2:  # half of them in compose projects, as a self-hoster's engine has
            labels |= {
                "com.docker.compose.project": f"bench{i % 5}",
                "com.docker.compose.service": f"svc{i % 7}",
            }
        body = {"Image": args.image, "Cmd": ["sleep", "3600"], "Labels": labels}
        creates.append(("POST", f"{eng}/containers/create?name={name}", body))
        if i < args.real_running:
            start_names.append(name)
    ok = (201, 404, 409)  # 409: that name is still being removed; 404: removed meanwhile
    await engine_calls(raw, creates, ok)
    starts = [("POST", f"{eng}/containers/{n}/start", None) for n in start_names]
    await engine_calls(raw, starts, (204, 304, 404, 409))
    return len(creates)


async def ours_listed(http: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    """(seconds, how many of the bench's containers) of the app's list of the host."""
    t0 = time.perf_counter()
    async with http.get(url) as resp:
        items = await resp.json()
        if resp.status != 200:
            raise SystemExit(f"GET {url} -> {resp.status}: {items}")
    return time.perf_counter() - t0, sum(1 for c in items if LABEL in c["labels"])


async def real_engine(
    http: aiohttp.ClientSession, base: str, args: argparse.Namespace, pid: int | None = None
) -> dict[str, Any]:
    raw, eng = engine_session(args.docker_url)
    try:
        await remove(raw, eng, list((await labelled(raw, eng)).values()))  # leftovers
        t0 = time.perf_counter()
        made = await top_up(raw, eng, args)
        setup_s = time.perf_counter() - t0
        async with http.post(
            base + "/api/docker/hosts", json={"name": "real", "url": args.docker_url}
        ) as r:
            if r.status != 201:
                raise SystemExit(f"adding the real engine: {r.status} {await r.text()}")
            host_id = f"docker:{(await r.json())['id']}"
        result = await measure(http, base, raw, eng, host_id, args, pid)
        return {"created": made, "setup_seconds": round(setup_s, 1), **result}
    finally:
        await remove(raw, eng, list((await labelled(raw, eng)).values()))
        await raw.close()


async def measure(
    http: aiohttp.ClientSession,
    base: str,
    raw: aiohttp.ClientSession,
    eng: str,
    host_id: str,
    args: argparse.Namespace,
    pid: int | None,
) -> dict[str, Any]:
    partial_url = f"{base}/ui/hosts/{host_id}/containers?all=1"
    api_url = f"{base}/api/hosts/{host_id}/containers?all=1"
    want = args.real_containers
    partial, api, cpu, nbytes = [], [], [], 0
    discarded, top_ups = 0, 0
    for _ in range(3):  # warm: templates, pooled connections, the live cache
        await timed_get(http, partial_url)
    deadline = time.perf_counter() + BUDGET_SECONDS
    while len(partial) < args.rounds and time.perf_counter() < deadline:
        t_api, before = await ours_listed(http, api_url)
        if before < want:
            top_ups += 1
            await top_up(raw, eng, args)
            await asyncio.sleep(0.5)  # the engine's events reach the app's cache
            continue
        cpu0 = proc_cpu(pid) if pid else 0.0
        elapsed, nbytes, _ = await timed_get(http, partial_url)
        spent = proc_cpu(pid) - cpu0 if pid else 0.0
        if (await ours_listed(http, api_url))[1] < want:
            discarded += 1  # removed elsewhere meanwhile: not a round of `want` containers
            continue
        partial.append(elapsed)
        api.append(t_api)
        cpu.append(spent)
    async with raw.get(eng + "/containers/json?all=1") as r:
        on_engine = len(await r.json())
    engine_list = [(await timed_get(raw, eng + "/containers/json?all=1"))[0] for _ in range(10)]
    return {
        "docker_url": args.docker_url,
        "running": args.real_running,
        "containers_on_engine": on_engine,
        "host_partial": {
            "url": partial_url,
            "bytes": nbytes,
            **stats(partial),
            "server_cpu_ms": round(sum(cpu) / max(1, len(cpu)) * MS, 2),
        },
        "host_api": {"url": api_url, **stats(api)},
        "engine_list": stats(engine_list),
        "discarded_rounds": discarded,
        "top_ups": top_ups,
    }
