"""Part (d) of bench/fleet.py: many containers on ONE real engine (the test dockerd),
the host's page partial timed through the app.

The containers are made straight through the Engine API, 16 calls at a time (what
parallel ``docker create`` runs amount to), most created only and some started, all
labelled ``archnest.bench.fleet`` and removed at the end. The test dockerd is shared:
a test elsewhere may remove every container at any moment, so a round that loses its
containers is made again (``attempts`` in the result says how many it took).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

from bench._common import measure_pages, stats, timed_get

LABEL = "archnest.bench.fleet"
ATTEMPTS = 3


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


async def labelled(raw: aiohttp.ClientSession, eng: str) -> list[str]:
    flt = json.dumps({"label": [LABEL]})
    async with raw.get(eng + "/containers/json", params={"all": "1", "filters": flt}) as r:
        return [c["Id"] for c in await r.json()]


async def make_containers(
    raw: aiohttp.ClientSession, eng: str, args: argparse.Namespace
) -> list[str]:
    creates = []
    for i in range(args.real_containers):
        labels = {LABEL: "1"}
        if i % 2:  # half of them in compose projects, as a self-hoster's engine has
            labels |= {
                "com.docker.compose.project": f"bench{i % 5}",
                "com.docker.compose.service": f"svc{i % 7}",
            }
        body = {"Image": args.image, "Cmd": ["sleep", "3600"], "Labels": labels}
        creates.append(("POST", f"{eng}/containers/create?name=fleet-bench-{i:04d}", body))
    made = [c["Id"] for c in await engine_calls(raw, creates, (201,))]
    starts = [("POST", f"{eng}/containers/{i}/start", None) for i in made[: args.real_running]]
    await engine_calls(raw, starts, (204, 304))
    return made


async def real_engine(
    http: aiohttp.ClientSession, base: str, args: argparse.Namespace
) -> dict[str, Any]:
    raw, eng = engine_session(args.docker_url)
    host_id = ""
    try:
        async with http.post(
            base + "/api/docker/hosts", json={"name": "real", "url": args.docker_url}
        ) as r:
            if r.status != 201:
                raise SystemExit(f"adding the real engine: {r.status} {await r.text()}")
            host_id = f"docker:{(await r.json())['id']}"
        last_error = ""
        for attempt in range(1, ATTEMPTS + 1):
            await remove(raw, eng, await labelled(raw, eng))  # this run's count only
            try:
                t0 = time.perf_counter()
                made = await make_containers(raw, eng, args)
                setup_s = time.perf_counter() - t0
                result = await measure(http, base, raw, eng, host_id, args)
            except EngineCallFailed as exc:
                last_error = str(exc)
                continue
            finally:
                await remove(raw, eng, await labelled(raw, eng))
            # Still all there at the end of the measure: the figures are of that many.
            if result.pop("ours_after") == len(made):
                setup = {"created": len(made), "setup_seconds": round(setup_s, 1)}
                return {**setup, "attempts": attempt, **result}
            last_error = "containers were removed by someone else during the measure"
        return {"error": last_error, "attempts": ATTEMPTS}
    finally:
        await raw.close()


async def measure(
    http: aiohttp.ClientSession,
    base: str,
    raw: aiohttp.ClientSession,
    eng: str,
    host_id: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    async with raw.get(eng + "/containers/json?all=1") as r:
        on_engine = len(await r.json())
    urls = {
        "host_partial": f"{base}/ui/hosts/{host_id}/containers?all=1",
        "host_api": f"{base}/api/hosts/{host_id}/containers?all=1",
    }
    pages = await measure_pages(http, urls, args.rounds)
    engine_list = [(await timed_get(raw, eng + "/containers/json?all=1"))[0] for _ in range(10)]
    return {
        "docker_url": args.docker_url,
        "running": args.real_running,
        "containers_on_engine": on_engine,
        **pages,
        "engine_list": stats(engine_list),
        "ours_after": len(await labelled(raw, eng)),
    }
