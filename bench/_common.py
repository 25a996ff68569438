"""Helpers shared by the benches: what a process holds and spends (from /proc), and
timed HTTP requests with their percentiles.

Import as ``from bench._common import ...`` after putting the repository root on
``sys.path`` (each bench script does, for ``tests.testenv`` as well).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

MS = 1000.0


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def proc_cpu(pid: int) -> float:
    """Seconds on a CPU of all threads of ``pid``, from schedstat (nanoseconds: the
    1/100 s ticks of /proc/PID/stat are too coarse for a 4 ms request)."""
    total = 0
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            total += int(Path(task.path, "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return total / 1e9


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank; 0.0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def timed(session: aiohttp.ClientSession, url: str, n: int, **kw) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds of ``n`` sequential GETs of ``url`` (body read); exits on a non-200."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        async with session.get(url, **kw) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise SystemExit(f"GET {url} -> {resp.status}: {body[:200]!r}")
        samples.append(time.perf_counter() - start)
    return samples


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 50) * MS, 2),
        "p99_ms": round(percentile(samples, 99) * MS, 2),
        "max_ms": round(max(samples, default=0.0) * MS, 2),
        "n": len(samples),
    }


async def timed_get(http: aiohttp.ClientSession, url: str) -> tuple[float, int, float | None]:
    """(seconds, body bytes, Server-Timing total in seconds or None) of one GET."""
    t0 = time.perf_counter()
    async with http.get(url) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise SystemExit(f"GET {url} -> {resp.status}: {body[:300]!r}")
        timing = resp.headers.get("Server-Timing", "")
    elapsed = time.perf_counter() - t0
    durs = [float(p.split("=", 1)[1]) for p in timing.replace(",", ";").split(";") if "dur=" in p]
    return elapsed, len(body), (max(durs) / MS if durs else None)


async def measure_pages(
    http: aiohttp.ClientSession, urls: dict[str, str], rounds: int, pid: int | None = None
) -> dict[str, Any]:
    """p50/p99 of each URL over ``rounds`` interleaved GETs (client-side time), its
    bytes, its Server-Timing when sent; with ``pid`` (the server), also the server's CPU
    per request, from a second pass of ``rounds`` GETs per URL in a row: unlike the
    time, it does not grow with the machine's load."""
    for url in urls.values():  # warm: templates, pooled connections, caches
        for _ in range(3):
            await timed_get(http, url)
    took: dict[str, list[float]] = {k: [] for k in urls}
    server: dict[str, list[float]] = {k: [] for k in urls}
    size: dict[str, int] = {}
    for _ in range(rounds):  # interleaved: every URL sees the same machine load
        for key, url in urls.items():
            elapsed, nbytes, st = await timed_get(http, url)
            took[key].append(elapsed)
            size[key] = nbytes
            if st is not None:
                server[key].append(st)
    out: dict[str, Any] = {}
    for key, url in urls.items():
        out[key] = {"url": url, "bytes": size[key], **stats(took[key])}
        if server[key]:
            out[key]["server_timing"] = stats(server[key])
        if pid is not None:
            cpu0 = proc_cpu(pid)
            for _ in range(rounds):
                await timed_get(http, url)
            out[key]["server_cpu_ms"] = round((proc_cpu(pid) - cpu0) / rounds * MS, 2)
    return out
