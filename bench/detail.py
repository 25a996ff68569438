"""Benchmark: a container's detail, ``GET /api/hosts/{id}/containers/{ref}``, through
the docker source (the engine's unix socket) and the ssh source (the test sshd in front
of the same dockerd), against the real services. Target: p50 <= 100 ms on both.

Needs the test environment (isolated dockerd + loopback sshd, as root): either a
running one (``python -m tests.testenv up --json F`` then ``--testenv-file F``) or the
script starts and stops its own. The app runs as ``archnest serve`` in its own process
(``tests.testenv.serve.ServedApp``, as bench/ssh_list.py runs it), SQLite in a temp data
dir. Measured in one run, interleaved, ``--rounds`` rounds (p50/p99 of client time, and
the app's CPU per request from /proc):

- docker: ours, and the baseline it wraps: the raw Engine API inspect
  (``GET /containers/{name}/json`` on the unix socket, a kept-alive connection);
- ssh: ours (warm: the pooled connection), and the usual ways to ask over SSH:
  ``docker -H ssh://target inspect`` and ``ssh target docker inspect`` (``--cli-rounds``
  of each: a new SSH connection every time);
- the stats sample ``GET .../stats`` (``--stats-rounds``): what every detail cost before
  it answered from inspect alone.

The test engine is shared: a test elsewhere may remove every container at any moment.
A round in which the bench's container was gone is dropped and the container made again
(``discarded_rounds``).

    python bench/detail.py [--testenv-file F] [--rounds 200] [--json out.json] [--strict]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.testenv and bench._common

from bench._common import MS, proc_cpu, stats  # noqa: E402
from bench.fleet_real import engine_session  # noqa: E402
from bench.ssh_list import timed as timed_cli  # noqa: E402

TARGET_P50 = 0.100
LABEL = "archnest.bench.detail"


class Gone(Exception):
    """The bench's container was not there (removed by a test elsewhere)."""


async def get(http: aiohttp.ClientSession, url: str) -> float:
    start = time.perf_counter()
    async with http.get(url) as resp:
        body = await resp.read()
    elapsed = time.perf_counter() - start
    if resp.status == 404:
        raise Gone(url)
    if resp.status != 200:
        raise SystemExit(f"GET {url} -> {resp.status}: {body[:300]!r}")
    return elapsed


def make_container(env, name: str) -> None:  # type: ignore[no-untyped-def]
    env.docker("rm", "-f", name, check=False)
    env.run_container(
        name,
        labels={LABEL: "1", "com.example.team": "ops"},
        env={"API_TOKEN": "not-shown", "MODE": "bench"},
        extra_args=["-v", "/data"],
    )


async def register(http: aiohttp.ClientSession, env) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The test dockerd as a docker host (unix socket) and behind the test sshd."""
    async with http.post(
        "/api/docker/hosts", json={"name": "bench-docker", "url": env.docker_unix_url}
    ) as r:
        assert r.status == 201, await r.text()
        engine = (await r.json())["id"]
    body = {
        "name": "bench-ssh",
        "host": env.ssh_target.host,
        "port": env.ssh_target.port,
        "username": env.ssh.username,
        "auth": "key",
        "private_key": env.ssh.private_key,
        "host_keys": [env.ssh_target.host_key],
        "docker": True,
    }
    async with http.post("/api/ssh/targets", json=body) as r:
        assert r.status == 201, await r.text()
        target = (await r.json())["id"]
    return f"docker:{engine}", f"ssh:{target}"


async def run(args: argparse.Namespace, env) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from tests.testenv.serve import ServedApp

    logging.basicConfig(level=logging.WARNING)
    name = f"bench-detail-{secrets.token_hex(3)}"
    make_container(env, name)
    served = await ServedApp({"ARCHNEST_HOST_TIMEOUT": "30"}).__aenter__()
    pid = served.proc.pid  # type: ignore[union-attr]
    raw, engine_base = engine_session(env.docker_unix_url)
    discarded = 0
    try:
        async with aiohttp.ClientSession(served.base, headers=served.headers) as http:
            docker_host, ssh_host = await register(http, env)
            urls = {
                "docker": f"/api/hosts/{docker_host}/containers/{name}",
                "ssh": f"/api/hosts/{ssh_host}/containers/{name}",
            }
            raw_url = f"{engine_base}/containers/{name}/json"
            samples: dict[str, list[float]] = {k: [] for k in ("docker", "ssh", "raw")}
            cpu: dict[str, list[float]] = {"docker": [], "ssh": []}
            warm = 5  # rounds not counted: pooled connections, API version, caches
            while len(samples["raw"]) < args.rounds:
                try:
                    took = {"raw": await get(raw, raw_url)}
                    spent = {}
                    for key, url in urls.items():
                        cpu0 = proc_cpu(pid)
                        took[key] = await get(http, url)
                        spent[key] = proc_cpu(pid) - cpu0
                except Gone:
                    discarded += 1
                    if discarded > max(20, args.rounds):
                        raise SystemExit("the container keeps disappearing") from None
                    make_container(env, name)
                    continue
                if warm:
                    warm -= 1
                    continue
                for key, value in took.items():
                    samples[key].append(value)
                for key, value in spent.items():
                    cpu[key].append(value)

            cli_env = env.docker_ssh_cli_env()
            cli = {"docker -H ssh://": [], "ssh docker inspect": []}
            ssh_cmd = ["ssh", "-F", env.ssh_config_path, "target", "docker", "inspect", name]
            for _ in range(args.cli_rounds):
                cli["docker -H ssh://"].append(
                    timed_cli(["docker", "-H", "ssh://target", "inspect", name], cli_env)
                )
                cli["ssh docker inspect"].append(timed_cli(ssh_cmd, cli_env))
            sample_times = {"docker": [], "ssh": []}
            for _ in range(args.stats_rounds):
                for key, url in urls.items():
                    sample_times[key].append(await get(http, url + "/stats"))
    finally:
        await raw.close()
        await served.__aexit__()
        env.docker("rm", "-f", name, check=False)

    med = {k: statistics.median(v) for k, v in samples.items()}
    med_cli = {k: statistics.median(v) for k, v in cli.items()}
    return {
        "rounds": args.rounds,
        "discarded_rounds": discarded,
        "detail": {k: stats(samples[k]) for k in ("docker", "ssh")},
        "raw_engine_inspect": stats(samples["raw"]),
        "app_cpu_ms_per_detail": {k: round(statistics.fmean(v) * MS, 3) for k, v in cpu.items()},
        "cli_inspect_over_ssh": {k: stats(v) for k, v in cli.items()},
        "stats_sample": {k: stats(v) for k, v in sample_times.items()},
        "ratios": {
            "docker_over_raw_inspect": round(med["docker"] / med["raw"], 2),
            "ssh_over_docker_h_ssh_inspect": round(med["ssh"] / med_cli["docker -H ssh://"], 3),
            "ssh_over_ssh_docker_inspect": round(med["ssh"] / med_cli["ssh docker inspect"], 3),
        },
        "target_p50_ms": TARGET_P50 * MS,
    }


def report(result: dict[str, Any]) -> bool:
    """Print the figures; True when both details are within the target."""
    d, r = result["detail"], result["ratios"]
    print(f"rounds={result['rounds']} (discarded: {result['discarded_rounds']})")
    print(f"{'':32s}{'p50 ms':>9s}{'p99 ms':>9s}")
    rows = [
        ("detail, docker (unix socket)", d["docker"]),
        ("raw Engine API inspect", result["raw_engine_inspect"]),
        ("detail, ssh (pooled)", d["ssh"]),
        *((k, v) for k, v in result["cli_inspect_over_ssh"].items()),
        *((f"stats sample, {k}", v) for k, v in result["stats_sample"].items()),
    ]
    for label, s in rows:
        print(f"{label:32s}{s['p50_ms']:9.2f}{s['p99_ms']:9.2f}")
    cpu = result["app_cpu_ms_per_detail"]
    print(f"app CPU per detail: docker {cpu['docker']:.2f} ms, ssh {cpu['ssh']:.2f} ms")
    print(f"docker detail / raw inspect        {r['docker_over_raw_inspect']:8.2f}x")
    print(f"ssh detail / docker -H ssh:// insp {r['ssh_over_docker_h_ssh_inspect']:8.3f}")
    print(f"ssh detail / ssh docker inspect    {r['ssh_over_ssh_docker_inspect']:8.3f}")
    ok = all(d[k]["p50_ms"] <= result["target_p50_ms"] for k in ("docker", "ssh"))
    print(f"p50 <= {result['target_p50_ms']:.0f} ms on docker and ssh: {'yes' if ok else 'NO'}")
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--testenv-file", help="JSON of a running tests.testenv (else start one)")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--cli-rounds", type=int, default=20, help="rounds of each CLI baseline")
    p.add_argument("--stats-rounds", type=int, default=5, help="rounds of the stats sample")
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--strict", action="store_true", help="exit 1 when a p50 is over target")
    args = p.parse_args()
    if args.rounds < 5 or args.cli_rounds < 1 or args.stats_rounds < 1:
        raise SystemExit("--rounds must be at least 5, the others at least 1")
    from tests.testenv import down, load, up

    env = load(args.testenv_file) if args.testenv_file else up()
    try:
        result = asyncio.run(run(args, env))
    finally:
        if not args.testenv_file:
            down(env)
    ok = report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    sys.exit(0 if ok or not args.strict else 1)


if __name__ == "__main__":
    main()
