"""Benchmark: our Engine API list endpoint against a raw Engine API request.

Starts its own ArchNest app (temp data dir, SQLite) on loopback, registers the engine
behind ``--socket`` as a ``docker`` host, makes sure ``--containers`` containers exist
(created from ``--image`` and removed afterwards), then measures in one run:

- raw: ``GET /containers/json?all=1`` straight to the engine over its unix socket
  (aiohttp UnixConnector, a kept-alive connection, like curl --unix-socket would);
- ours: ``GET /api/docker/hosts/{id}/containers?all=1`` through the app (HTTP, bearer
  auth, normalisation, JSON), with a kept-alive connection to the app.

Prints the medians and the ratio (target: ours within 2x of raw).

    python bench/docker_api_list.py --socket /path/to/docker.sock [--requests 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for bench._common

from bench._common import timed  # noqa: E402

LABEL = "archnest.bench"


def default_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://") :] if host.startswith("unix://") else "/var/run/docker.sock"


async def ensure_containers(raw: aiohttp.ClientSession, image: str, count: int) -> list[str]:
    """Create and start ``count`` labelled containers; returns their ids."""
    ids = []
    for i in range(count):
        body = {
            "Image": image,
            "Cmd": ["sleep", "3600"],
            "Labels": {LABEL: "1", "bench.index": str(i)},
            "Env": ["APP_SECRET=not-shown", "MODE=bench"],
        }
        async with raw.post("http://docker/containers/create", json=body) as resp:
            if resp.status != 201:
                raise SystemExit(f"cannot create a container: {resp.status} {await resp.text()}")
            cid = (await resp.json())["Id"]
        async with raw.post(f"http://docker/containers/{cid}/start") as resp:
            if resp.status not in (204, 304):
                raise SystemExit(f"cannot start a container: {await resp.text()}")
        ids.append(cid)
    return ids


async def remove_containers(raw: aiohttp.ClientSession, ids: list[str]) -> None:
    for cid in ids:
        async with raw.delete(f"http://docker/containers/{cid}?force=1&v=1"):
            pass


async def timed_source(source, key: str, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await source.list_containers(key, all=True)
        samples.append(time.perf_counter() - start)
    return samples


async def main(args: argparse.Namespace) -> int:
    from aiohttp import web
    from archnest import DB_KEY, SOURCES_KEY, Settings, create_app
    from archnest.users import create_token, create_user

    logging.basicConfig(level=logging.WARNING)
    raw = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=args.socket))
    created: list[str] = []
    tmp = tempfile.TemporaryDirectory(prefix="archnest-bench-")
    runner = None
    try:
        async with raw.get("http://docker/containers/json?all=1") as resp:
            have = len(await resp.json())
        if have < args.containers:
            created = await ensure_containers(raw, args.image, args.containers - have)

        settings = Settings(
            data_dir=Path(tmp.name),
            secret_key="bench-secret-key",
            admin_password="bench-password-1",
            plugin_env={"ARCHNEST_ADD_LOCAL_DOCKER": "0"},
        )
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        await create_user(app[DB_KEY], "bench", "bench-password-1", "admin")
        token = await create_token(app[DB_KEY], "bench", "bench")
        headers = {"Authorization": f"Bearer {token}"}

        async with aiohttp.ClientSession(base_url=base, headers=headers) as ours:
            async with ours.post(
                "/api/docker/hosts", json={"name": "bench", "url": f"unix://{args.socket}"}
            ) as resp:
                engine_id = (await resp.json())["id"]
            our_url = f"/api/docker/hosts/{engine_id}/containers?all=1"
            raw_url = "http://docker/containers/json?all=1"
            # Warm both paths (API version negotiation, pooled connections, caches).
            await timed(ours, our_url, 5)
            await timed(raw, raw_url, 5)
            # Interleaved rounds so both see the same machine load.
            source = app[SOURCES_KEY]["docker"]
            ours_s: list[float] = []
            raw_s: list[float] = []
            source_s: list[float] = []
            for _ in range(args.requests // 10):
                raw_s += await timed(raw, raw_url, 10)
                ours_s += await timed(ours, our_url, 10)
                source_s += await timed_source(source, str(engine_id), 10)
            baseline = await timed(ours, "/api/docker/hosts", args.requests)
            async with ours.get(our_url) as resp:
                listed = len(await resp.json())

        med_raw, med_ours = statistics.median(raw_s), statistics.median(ours_s)
        print(f"engine socket:       {args.socket}")
        print(f"containers listed:   {listed}")
        print(f"requests each:       {len(raw_s)}")
        print(f"raw Engine API:      median {med_raw * 1000:.2f} ms")
        print(f"ArchNest list route: median {med_ours * 1000:.2f} ms")
        ratio = med_ours / med_raw
        print(f"ratio ours/raw:      {ratio:.2f}x (target <= 2.00x)")
        # Where the time goes: the source alone (in-process: engine call + normalisation)
        # and an authenticated route that does not touch the engine (HTTP + auth + DB).
        med_source = statistics.median(source_s)
        med_base = statistics.median(baseline)
        print(f"source alone:        median {med_source * 1000:.2f} ms", end="")
        print(f" ({med_source / med_raw:.2f}x raw)")
        print(f"authed, no engine:   median {med_base * 1000:.2f} ms (GET /api/docker/hosts)")
        return 0 if ratio <= 2.0 or not args.strict else 1
    finally:
        if runner is not None:
            await runner.cleanup()
        await remove_containers(raw, created)
        await raw.close()
        tmp.cleanup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", default=default_socket(), help="the engine's unix socket")
    p.add_argument("--requests", type=int, default=50, help="requests per side (>= 20)")
    p.add_argument("--containers", type=int, default=20, help="make sure this many exist")
    p.add_argument("--image", default="archnest-test/busybox:1")
    p.add_argument("--strict", action="store_true", help="exit 1 when over the target")
    args = p.parse_args(argv)
    args.requests = max(20, args.requests - args.requests % 10)
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
