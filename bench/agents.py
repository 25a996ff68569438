"""Many agents against two replicas: ``--agents`` simulated push agents report every
``--interval`` seconds (with jitter) for ``--duration`` seconds to two ``archnest
serve`` replicas on one PostgreSQL behind HAProxy (round-robin).

In one run: the test environment's PostgreSQL (``--testenv-file F`` or
ARCHNEST_TESTENV_FILE; else the script starts its own) gets a fresh database; replica A
migrates it, replica B starts on it; HAProxy (tests/testenv/haproxy.py, the
configuration of docs/operations.md) balances between them. Each agent is a coroutine
with its own host name, first report at a random moment within one interval, then one
report every ``interval x (1 +- jitter)`` seconds; reports are built like the agent's
(tests/agent/payloads.py via bench/agent_ingest.py's ``Reports``: ``--containers``
containers, stats samples, a fraction ``--churn`` changed since the host's last report).

Measured: reports sent, answered 204, errors by kind; latency p50/p99/max through the
balancer; **lost** = 204 answers not counted in the database (``SUM(report_count)`` of
``docker_agent_reports``, read directly at the end); each replica's CPU (all threads,
schedstat) as % of one core and its RSS at the end; PostgreSQL's CPU (every process of
the test server, /proc) as % of one core. Exits non-zero on any loss or error.

    python bench/agents.py [--agents 2000] [--interval 30] [--jitter 0.2]
                           [--duration 600] [--containers 15] [--churn 0.02]
                           [--testenv-file F] [--json out.json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.testenv, tests.agent and bench.*

from bench._common import percentile, proc_cpu, rss_bytes  # noqa: E402
from bench.agent_ingest import Reports  # noqa: E402

TOKEN = "bench-agents-token-" + os.urandom(8).hex()


def _children(root: int) -> list[int]:
    """``root`` and every process whose parent chain leads to it (a PostgreSQL server:
    the postmaster and its backends, which come and go with connections)."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = {root}, [root]
    while todo:
        pid = todo.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = proc_cpu(pid)
        except OSError:
            continue
    return out


async def _stored(db_url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(
            await conn.fetchval("SELECT COALESCE(SUM(report_count), 0) FROM docker_agent_reports")
        )
    finally:
        await conn.close()


async def _agents(args: argparse.Namespace, url: str, reports: Reports) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counts = {"sent": 0, "ok": 0}
    rounds = [0] * args.agents
    end = time.monotonic() + args.duration
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30)
    rng = random.Random(7)

    async def agent(h: int) -> None:
        await asyncio.sleep(rng.random() * args.interval)
        while time.monotonic() < end:
            body = reports.body(rounds[h] * args.agents + h)
            rounds[h] += 1
            counts["sent"] += 1
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers, timeout=timeout) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            else:
                latencies.append(time.perf_counter() - t0)
                if status == 204:
                    counts["ok"] += 1
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
            pause = args.interval * (1 + args.jitter * (2 * rng.random() - 1))
            await asyncio.sleep(max(0.0, min(pause, end - time.monotonic())))

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(agent(h) for h in range(args.agents)))
    ms = [x * 1000 for x in latencies]
    return {
        **counts,
        "errors": errors,
        "latency_ms": {
            "p50": round(percentile(ms, 50), 2),
            "p99": round(percentile(ms, 99), 2),
            "max": round(max(ms), 2) if ms else 0.0,
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.testenv import load, up
    from tests.testenv.haproxy import haproxy
    from tests.testenv.serve import ServedApp

    env_file = args.testenv_file or os.environ.get("ARCHNEST_TESTENV_FILE")
    testenv = load(env_file) if env_file else up()
    db_name = f"bench_agents_{os.urandom(4).hex()}"
    db_url = await testenv.acreate_database(db_name)
    work = Path(tempfile.mkdtemp(prefix="archnest-bench-agents-"))
    shared = {
        "ARCHNEST_DATABASE_URL": db_url,
        "ARCHNEST_SECRET_KEY": "bench-agents-secret-key",
        "ARCHNEST_AGENT_TOKEN": TOKEN,
    }
    print(f"building {args.agents} agents' reports ({args.containers} containers each)", flush=True)
    reports = Reports(args.agents, args.containers, args.churn)
    a = await ServedApp(shared, data_dir=str(work / "a"), log_path=work / "a.log").__aenter__()
    b = None
    try:
        b = await ServedApp(
            shared, data_dir=str(work / "b"), log_path=work / "b.log", prepare=False
        ).__aenter__()
        replicas = {"a": a, "b": b}
        ports = {n: int(r.base.rsplit(":", 1)[1]) for n, r in replicas.items()}
        with haproxy(work, ports) as lb:
            async with aiohttp.ClientSession() as http:
                for _ in range(100):  # until the balancer's health checks pass
                    try:
                        async with http.get(lb + "/healthz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
            pg = _children(testenv.pids["postgres"])
            cpu0 = {n: proc_cpu(r.proc.pid) for n, r in replicas.items()}  # type: ignore[union-attr]
            pg0, t0 = _cpu_by_pid(pg), time.monotonic()
            print(
                f"{args.agents} agents every {args.interval:g} s for {args.duration:g} s",
                flush=True,
            )
            sent = await _agents(args, lb + "/api/agents/docker/report", reports)
            wall = time.monotonic() - t0
            cpu = {
                n: round((proc_cpu(r.proc.pid) - cpu0[n]) / wall * 100, 2)  # type: ignore[union-attr]
                for n, r in replicas.items()
            }
            rss = {n: round(rss_bytes(r.proc.pid) / 2**20, 1) for n, r in replicas.items()}  # type: ignore[union-attr]
            # Backends opened during the run count from zero; those that ended during
            # it are not counted (the replicas' pools keep theirs open, so few end).
            pg1 = _cpu_by_pid(_children(testenv.pids["postgres"]))
            pg_cpu = round(sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items()) / wall * 100, 2)
        stored = await _stored(db_url)
    finally:
        if b is not None:
            await b.__aexit__()
        await a.__aexit__()
        await testenv.adrop_database(db_name)
        if not env_file:
            testenv.down()
    return {
        "agents": args.agents,
        "interval_s": args.interval,
        "jitter": args.jitter,
        "duration_s": args.duration,
        "containers_per_report": args.containers,
        "churn": args.churn,
        "wall_s": round(wall, 1),
        "reports_per_s": round(sent["ok"] / wall, 1),
        **sent,
        "stored": stored,
        "lost": sent["ok"] - stored,
        "replica_cpu_percent_of_a_core": cpu,
        "replica_rss_mib": rss,
        "postgres_cpu_percent_of_a_core": pg_cpu,
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agents", type=int, default=2000)
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--jitter", type=float, default=0.2)
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--containers", type=int, default=15)
    p.add_argument("--churn", type=float, default=0.02)
    p.add_argument("--connections", type=int, default=256, help="client connections at most")
    p.add_argument("--testenv-file")
    p.add_argument("--json")
    p.add_argument("--quick", action="store_true", help="CI smoke size: 40 agents, 2 s, 8 s")
    args = p.parse_args()
    if args.quick:
        args.agents, args.interval, args.duration = 40, 2.0, 8.0
    result = asyncio.run(run(args))
    for key, value in result.items():
        print(f"{key:>34}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if result["lost"] or result["errors"] or not result["ok"]:
        raise SystemExit("errors or lost reports")


if __name__ == "__main__":
    main()
