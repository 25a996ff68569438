"""Benchmark: a container's log downloaded as a file, its throughput and the app's RSS.

Needs the test environment (isolated dockerd + loopback sshd, as root): either a
running one (``python -m tests.testenv up --json F`` then ``--testenv-file F``) or the
script starts and stops its own. It serves ArchNest as its own process (``archnest
serve``, temp data dir, SQLite), registers the test dockerd as a ``docker`` host (unix
socket) and the test sshd as an ``ssh`` host, runs one container that prints
``--lines`` lines of about 60 bytes, then for each source downloads the whole log
(``GET /api/hosts/{id}/containers/{ref}/logs/download``) while sampling the app's RSS
(``VmRSS`` of /proc/PID/status) every few milliseconds:

- throughput: bytes and lines per second of the download, as the client received it;
- RSS growth: the highest RSS seen during the download minus the RSS just before it
  (after a warm-up download, so first-use allocations are not counted);
- the same with a slow client (``--slow-ms`` of sleep after each 64 KiB read): the app
  must wait for the client (back-pressure) instead of buffering the log;
- for contrast, the route that reads the log whole (``/logs?format=text&tail=N``):
  what the download would cost if it held the log in memory.

    python bench/log_download.py [--testenv-file F] [--lines 100000] [--slow-ms 2]
                                 [--json out.json]

Exits non-zero when a download is not the whole log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.testenv and bench._common

from bench._common import rss_bytes  # noqa: E402

CONTAINER = "bench-log-download"
PAD = "of the log download bench, padded to sixty bytes"


def printer(lines: int) -> list[str]:
    return ["sh", "-c", f"seq 1 {lines} | sed 's/.*/line & {PAD}/'"]


async def register(http: aiohttp.ClientSession, base: str, headers: dict, env: Any) -> dict:
    """The test dockerd as a docker host and the test sshd as an ssh host: their ids."""
    from tests.ssh.conftest import target_payload

    hosts = {}
    body = {"name": "bench-engine", "url": env.docker_unix_url}
    async with http.post(f"{base}/api/docker/hosts", json=body, headers=headers) as r:
        assert r.status == 201, await r.text()
        hosts["docker"] = f"docker:{(await r.json())['id']}"
    body = target_payload(env, env.ssh_target, "key", name="bench-ssh", docker=True)
    async with http.post(f"{base}/api/ssh/targets", json=body, headers=headers) as r:
        assert r.status == 201, await r.text()
        hosts["ssh"] = f"ssh:{(await r.json())['id']}"
    return hosts


async def measured(
    http: aiohttp.ClientSession, url: str, headers: dict, pid: int, slow_ms: float = 0.0
) -> dict[str, Any]:
    """One GET of ``url``: bytes, lines, seconds, and the app's RSS before and at peak."""
    before = rss_bytes(pid)
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    size = lines = 0
    start = time.perf_counter()
    try:
        async with http.get(url, headers=headers) as r:
            assert r.status == 200, await r.text()
            async for chunk in r.content.iter_chunked(64 * 1024):
                size += len(chunk)
                lines += chunk.count(b"\n")
                if slow_ms:
                    await asyncio.sleep(slow_ms / 1000)
        seconds = time.perf_counter() - start
    finally:
        done.set()
        await sampler
    peak = max(peak, rss_bytes(pid))
    return {
        "bytes": size,
        "lines": lines,
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "lines_per_s": round(lines / seconds),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_growth_mb": round((peak - before) / 2**20, 1),
    }


def ensure_log(env: Any, lines: int) -> None:
    """The container with its log, made again if it is gone (the test dockerd is shared
    with test runs, which remove every container when they end)."""
    if env.docker("ps", "-aq", "--filter", f"name=^{CONTAINER}$"):
        return
    env.run_container(CONTAINER, printer(lines))
    env.docker("wait", CONTAINER, timeout=300)


async def run(env: Any, lines: int, slow_ms: float, contrast: bool = True) -> dict[str, Any]:
    from tests.testenv.serve import ServedApp

    env.docker("rm", "-f", CONTAINER, check=False)
    out: dict[str, Any] = {"lines": lines, "slow_ms": slow_ms, "runs": {}}
    try:
        async with ServedApp({"ARCHNEST_HOST_TIMEOUT": "30"}) as app:
            assert app.proc is not None
            pid = app.proc.pid
            async with aiohttp.ClientSession() as http:
                hosts = await register(http, app.base, app.headers, env)
                for source, host in hosts.items():
                    url = f"{app.base}/api/hosts/{host}/containers/{CONTAINER}/logs/download"
                    ensure_log(env, lines)
                    await measured(http, url + "?tail=1000", app.headers, pid)  # warm-up
                    out["runs"][source] = await measured(http, url, app.headers, pid)
                    out["runs"][f"{source}, slow client"] = await measured(
                        http, url + "?timestamps=1", app.headers, pid, slow_ms
                    )
                if contrast:
                    # Last: memory a process took is rarely given back to the system.
                    host = hosts["docker"]
                    ensure_log(env, lines)
                    url = (
                        f"{app.base}/api/hosts/{host}/containers/{CONTAINER}/logs"
                        f"?format=text&tail={min(lines, 100_000)}"
                    )
                    out["runs"]["docker, read whole (format=text)"] = await measured(
                        http, url, app.headers, pid
                    )
    finally:
        env.docker("rm", "-f", CONTAINER, check=False)
    return out


def report(result: dict[str, Any]) -> str:
    rows = [
        f"{result['lines']:,} lines; slow client sleeps {result['slow_ms']:g} ms per 64 KiB",
        f"{'download':<36}{'MB':>7}{'s':>8}{'MB/s':>7}{'lines/s':>10}{'RSS +MB':>9}",
    ]
    for name, r in result["runs"].items():
        rows.append(
            f"{name:<36}{r['bytes'] / 1e6:>7.1f}{r['seconds']:>8.2f}{r['mb_per_s']:>7.1f}"
            f"{r['lines_per_s']:>10,}{r['rss_growth_mb']:>9.1f}"
        )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--testenv-file", help="a running test environment (its JSON file)")
    p.add_argument("--lines", type=int, default=100_000)
    p.add_argument("--slow-ms", type=float, default=2.0)
    p.add_argument("--no-contrast", action="store_true", help="skip the read-whole route")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    from tests.testenv import down, load, up

    env = load(args.testenv_file) if args.testenv_file else up()
    try:
        result = asyncio.run(run(env, args.lines, args.slow_ms, not args.no_contrast))
    finally:
        if not args.testenv_file:
            down(env)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    incomplete = [
        name
        for name, r in result["runs"].items()
        if name != "docker, read whole (format=text)" and r["lines"] != args.lines
    ]
    if incomplete:
        print(f"incomplete downloads: {', '.join(incomplete)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
