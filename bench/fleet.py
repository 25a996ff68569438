"""Fleet at scale: 200 engines of 50 containers, one change to a subscriber, idle cost.

In one run: ``bench/engine_emulator.py`` in its own process serves ``--engines``
emulated engines (a simulation for scale only: the real dockerd of tests/testenv covers
correctness), ``archnest serve`` runs in its own process on SQLite, and every engine is
registered through ``POST /api/docker/hosts`` (``tcp://127.0.0.1:PORT``). Once the app
lists every engine as ok with all its containers (and, when ``/api/events`` exists,
holds one event subscription per engine), it measures:

(a) the first page of the all-hosts view with a filter and a sort: ``GET
    /ui/containers?q=..&sort=name&page=1`` and ``GET /api/containers?q=..&sort=name
    &limit=100``, client-side time on loopback (a ``Server-Timing`` header is reported
    when present), p50/p99 and bytes; the whole fleet in one answer as the contrast;
(b) one change made on a random emulated engine (its control port) until the
    ``container`` event with that id and action reaches a ``GET /api/events``
    subscriber, p50/p99 (includes the control request, ~1 ms on loopback);
(c) the app's RSS (VmRSS, VmHWM) and its CPU while idle with the subscriptions held
    (``--idle-seconds``, from /proc/PID/task/*/schedstat);
(d) ``--real-containers`` containers created on ONE real engine (the test dockerd:
    ``--docker-url`` or ARCHNEST_TESTENV_FILE; created, some started, removed at the
    end): ``GET /ui/hosts/docker:N/containers?all=1`` p50/p99.

Targets (issue 14): (a) <= 100 ms p50, (b) <= 1 s p99, (d) <= 100 ms p50. Nothing fails
on a missed target (use the figures); ``--quick`` is the CI smoke size.

    python bench/fleet.py [--quick] [--engines 200] [--containers 50] [--events 120]
                          [--docker-url unix:///var/run/docker.sock] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.testenv and bench._common

from bench._common import measure_pages, proc_cpu, rss_bytes, stats, timed_get  # noqa: E402
from bench.fleet_real import real_engine  # noqa: E402

NO_MATCH = "zz-fleet-no-such-container"


class Emulator:
    """bench/engine_emulator.py in its own process."""

    def __init__(self, engines: int, containers: int, seed: int) -> None:
        script = Path(__file__).with_name("engine_emulator.py")
        cmd = [sys.executable, str(script), "--engines", str(engines)]
        cmd += ["--containers", str(containers), "--seed", str(seed)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline() or "{}")
        if "ports" not in ready:
            raise SystemExit(f"the emulator did not start (exit {self.proc.poll()})")
        self.ports: list[int] = ready["ports"]
        self.control = f"http://127.0.0.1:{ready['control_port']}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def register(http: aiohttp.ClientSession, base: str, ports: list[int]) -> list[str]:
    """Add one docker host per port; returns their host ids in port order."""
    gate = asyncio.Semaphore(16)

    async def add(i: int, port: int) -> str:
        body = {"name": f"emulated-{i:03d}", "url": f"tcp://127.0.0.1:{port}"}
        async with gate, http.post(base + "/api/docker/hosts", json=body) as resp:
            if resp.status != 201:
                raise RuntimeError(f"adding engine {i}: {resp.status} {await resp.text()}")
            return f"docker:{(await resp.json())['id']}"

    return list(await asyncio.gather(*(add(i, p) for i, p in enumerate(ports))))


async def events_available(http: aiohttp.ClientSession, base: str) -> bool:
    async with http.get(base + "/api/events") as resp:
        return resp.status == 200 and resp.content_type == "text/event-stream"


async def wait_live(
    http: aiohttp.ClientSession, base: str, emu: Emulator, hosts: list[str], want: int, live: bool
) -> dict[str, Any]:
    """Until every host is ok with all its containers listed (and subscribed, when the
    app follows events); returns how long that took and what was seen."""
    start, seen = time.perf_counter(), {}
    while time.perf_counter() - start < 300:
        async with http.get(base + "/api/containers?all=1") as resp:
            body = await resp.json()
        ours = set(hosts)
        ok = sum(1 for h in body["hosts"] if h["id"] in ours and h["status"] == "ok")
        listed = sum(1 for c in body["containers"] if c["host_id"] in ours)
        async with http.get(emu.control + "/stats") as resp:
            subscribed = sum(1 for n in (await resp.json())["subscribers"] if n)
        seen = {"hosts_ok": ok, "containers_listed": listed, "engines_subscribed": subscribed}
        if ok == len(hosts) and listed == want and (subscribed == len(hosts) or not live):
            return {"seconds": round(time.perf_counter() - start, 2), **seen}
        await asyncio.sleep(1)
    raise SystemExit(f"the app never had the fleet live: {seen}")


async def list_params_supported(http: aiohttp.ClientSession, base: str) -> dict[str, bool]:
    """Whether the server filters and pages (q, limit, page) or ignores the params."""
    async with http.get(f"{base}/api/containers?all=1&q={NO_MATCH}&limit=1") as resp:
        api = resp.status == 200 and not (await resp.json())["containers"]
    _, filtered, _ = await timed_get(http, f"{base}/ui/containers?q={NO_MATCH}")
    _, everything, _ = await timed_get(http, f"{base}/ui/containers")
    return {"api": api, "ui": filtered * 2 < everything}


class Subscriber:
    """One ``GET /api/events`` reader; notes when each (host, id, action) arrived."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, str], list[tuple[float, dict]]] = {}
        self.waiters: dict[tuple[str, str, str], asyncio.Future] = {}
        self.task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def run(self, http: aiohttp.ClientSession, url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with http.get(url, timeout=timeout) as resp:
            event, data = "", ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line:
                    if event == "hello":
                        self.connected.set()
                    elif event == "container" and data:
                        self._arrived(json.loads(data))
                    event, data = "", ""

    def _arrived(self, body: dict) -> None:
        now = time.perf_counter()
        key = (body.get("host_id", ""), body.get("id", ""), body.get("action", ""))
        self.seen.setdefault(key, []).append((now, body))
        fut = self.waiters.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result((now, body))

    async def wait(self, key: tuple[str, str, str], since: float, timeout: float) -> tuple:
        for at, body in self.seen.get(key, []):
            if at >= since:
                return at, body
        fut = asyncio.get_running_loop().create_future()
        self.waiters[key] = fut
        return await asyncio.wait_for(fut, timeout)


async def measure_events(
    http: aiohttp.ClientSession, sub: Subscriber, emu: Emulator, hosts: list[str], n: int
) -> dict[str, Any]:
    latencies: list[float] = []
    missed, wrong_state = 0, 0
    rnd = random.Random(7)
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.post(emu.control + "/random", json={}) as resp:
            change = await resp.json()
        key = (hosts[change["engine"]], change["id"], change["action"])
        try:
            at, body = await sub.wait(key, t0, timeout=10)
        except TimeoutError:
            missed += 1
            continue
        latencies.append(at - t0)
        wrong_state += body.get("state") != change["state"]
        await asyncio.sleep(rnd.uniform(0.01, 0.1))  # changes apart, not one burst
    return {**stats(latencies), "changes": n, "missed": missed, "wrong_state": wrong_state}


async def measure_idle(pid: int, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(2)  # let the last events and lists settle
    cpu0, t0 = proc_cpu(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = proc_cpu(pid) - cpu0, time.perf_counter() - t0
    hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return {
        "seconds": round(wall, 1),
        "cpu_percent": round(cpu / wall * 100, 2),
        "rss_mib": round(rss_bytes(pid) / 2**20, 1),
        "rss_peak_mib": round(hwm / 2**20, 1),
    }


# --- the run -----------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.testenv.serve import ServedApp

    result: dict[str, Any] = {
        "engines": args.engines,
        "containers_per_engine": args.containers,
        "cpus": os.cpu_count(),
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    emu = Emulator(args.engines, args.containers, args.seed)
    served = ServedApp({"ARCHNEST_DATABASE_URL": ""})  # SQLite in its data dir
    try:
        await served.__aenter__()
        assert served.proc is not None
        pid, base = served.proc.pid, served.base
        result["rss_mib_empty"] = round(rss_bytes(pid) / 2**20, 1)
        async with aiohttp.ClientSession(headers=served.headers) as http:
            live = await events_available(http, base)
            result["events_endpoint"] = live
            t0 = time.perf_counter()
            hosts = await register(http, base, emu.ports)
            result["register_seconds"] = round(time.perf_counter() - t0, 2)
            want = args.engines * args.containers
            result["ready"] = await wait_live(http, base, emu, hosts, want, live)
            result["list_params"] = await list_params_supported(http, base)
            q = args.query
            result["pages"] = await measure_pages(
                http,
                {
                    "ui_first_page": f"{base}/ui/containers?q={q}&sort=name&page=1",
                    "api_first_page": f"{base}/api/containers?q={q}&sort=name&limit=100",
                    "api_whole_fleet": f"{base}/api/containers?all=1",
                },
                args.rounds,
                pid,
            )
            async with http.get(result["pages"]["api_first_page"]["url"]) as resp:
                first = await resp.json()  # how many matched, of how many listed
            result["pages"]["api_first_page"]["matches"] = first.get("total")
            result["pages"]["api_first_page"]["rows"] = len(first["containers"])
            sub = Subscriber()
            if live:
                sub.task = asyncio.create_task(sub.run(http, base + "/api/events"))
                await asyncio.wait_for(sub.connected.wait(), 10)
                result["events"] = await measure_events(http, sub, emu, hosts, args.events)
            result["idle"] = await measure_idle(pid, args.idle_seconds)
            async with http.get(emu.control + "/stats") as resp:
                subs = (await resp.json())["subscribers"]
            result["idle"]["engine_subscriptions"] = sum(subs)
            if sub.task is not None:
                sub.task.cancel()
            if args.real_containers and args.docker_url:
                result["real"] = await real_engine(http, base, args, pid)
    finally:
        await served.__aexit__()
        emu.stop()
    result["load_average_end"] = round(os.getloadavg()[0], 2)
    return result


def report(r: dict[str, Any]) -> str:
    def line(label: str, got: float, target: float | None = None, unit: str = "ms") -> str:
        text = f"  {label:46s} {got:9.2f} {unit}"
        if target:
            text += f"   target <= {target:g} {unit}: {got / target:.2f}x"
        return text

    def page(label: str, m: dict[str, Any], target: float | None = None) -> list[str]:
        out = [line(f"{label} p50", m["p50_ms"], target), line("    p99", m["p99_ms"])]
        if "server_cpu_ms" in m:
            out.append(line("    app CPU per request", m["server_cpu_ms"]))
        if "server_timing" in m:
            out.append(line("    Server-Timing p50", m["server_timing"]["p50_ms"]))
        if "bytes" in m:
            out.append(line("    bytes", m["bytes"] / 1024, unit="KiB"))
        return out

    p = r["pages"]
    out = [
        f"fleet: {r['engines']} engines x {r['containers_per_engine']} containers, "
        f"{r['cpus']} CPUs, load {r['load_average_start']} -> {r['load_average_end']}",
        f"  ready after {r['ready']['seconds']} s: {r['ready']}",
        f"  server-side list params: {r['list_params']} (False: measured without them)",
        *page("(a) /ui/containers?q&sort=name&page=1", p["ui_first_page"], 100),
        *page("(a) /api/containers?q&sort=name&limit=100", p["api_first_page"], 100),
        f"      {p['api_first_page']['rows']} rows of {p['api_first_page']['matches']} matches",
        *page("    /api/containers?all=1 (whole fleet)", p["api_whole_fleet"]),
    ]
    ev = r.get("events")
    if ev is None:
        out.append("  (b) change -> /api/events subscriber: not measured (no /api/events)")
    else:
        out.append(line("(b) change -> subscriber p99", ev["p99_ms"], 1000))
        out.append(
            f"      p50 {ev['p50_ms']} ms, max {ev['max_ms']} ms, {ev['changes']} changes, "
            f"{ev['missed']} missed, {ev['wrong_state']} with a wrong state"
        )
    idle = r["idle"]
    out.append(
        f"  (c) idle {idle['seconds']} s with {idle['engine_subscriptions']} engine "
        f"subscriptions: CPU {idle['cpu_percent']} % of one core, RSS {idle['rss_mib']} MiB "
        f"(peak {idle['rss_peak_mib']}, empty app {r['rss_mib_empty']})"
    )
    real = r.get("real")
    if real is None or "error" in real:
        out.append(f"  (d) real engine: {'skipped' if real is None else real['error']}")
    else:
        out.append(
            f"  (d) real engine, {args_real(real)} ({real['running']} running; made in "
            f"{real['setup_seconds']} s; {real['host_partial']['n']} rounds counted, "
            f"{real['discarded_rounds']} discarded, {real['top_ups']} top-ups after removals "
            "elsewhere)"
        )
        out += page("    /ui/hosts/{id}/containers?all=1", real["host_partial"], 100)
        out += page("    /api/hosts/{id}/containers?all=1", real["host_api"])
        out.append(line("    the engine's own list p50", real["engine_list"]["p50_ms"]))
    return "\n".join(out)


def args_real(real: dict[str, Any]) -> str:
    return f"{real['created']} containers made, {real['containers_on_engine']} on the engine"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CI smoke size (20x10, 10 events)")
    p.add_argument("--engines", type=int, default=200)
    p.add_argument("--containers", type=int, default=50, help="per emulated engine")
    p.add_argument("--events", type=int, default=120, help="changes timed to a subscriber")
    p.add_argument("--rounds", type=int, default=50, help="requests per measured URL")
    p.add_argument("--idle-seconds", type=float, default=30.0)
    p.add_argument("--query", default="web", help="the filter text of (a)")
    p.add_argument("--docker-url", help="the real engine of (d) (default: the testenv's)")
    p.add_argument("--image", help="image of (d)'s containers (default: the testenv's)")
    p.add_argument("--real-containers", type=int, default=500, help="(d); 0 skips it")
    p.add_argument("--real-running", type=int, default=50, help="of those, started")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--json", help="also write the result to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.engines, args.containers, args.events = 20, 10, 10
        args.rounds, args.idle_seconds = 10, 3.0
        args.real_containers, args.real_running = min(args.real_containers, 50), 5
    env_file = os.environ.get("ARCHNEST_TESTENV_FILE")
    if env_file and (not args.docker_url or not args.image):
        testenv = json.loads(Path(env_file).read_text())
        args.docker_url = args.docker_url or testenv["docker_unix_url"]
        args.image = args.image or testenv["image"]
    args.image = args.image or "busybox:latest"
    return args


def main() -> None:
    args = parse_args()
    result = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(report(result))


if __name__ == "__main__":
    main()
