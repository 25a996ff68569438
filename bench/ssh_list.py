"""Benchmark: listing containers over SSH, warm, against the usual CLI ways.

Needs the test environment (isolated dockerd + loopback sshd, as root): either a
running one (``python -m tests.testenv up --json F`` then ``--testenv-file F``) or the
script starts and stops its own. It starts an ArchNest app on 127.0.0.1 (temp data dir,
SQLite), registers ``--targets`` SSH targets (all pointing at the same test sshd: the
machine has one), makes sure ``--containers`` containers run, then measures in one run,
interleaved, ``--rounds`` rounds each (medians):

- ours: ``GET /api/docker-ssh/hosts/{id}/containers`` (warm: the pooled connection);
- ``docker -H ssh://target ps`` (the docker CLI's own SSH transport, a new ssh each time);
- ``ssh target docker ps`` (a new connection per command: the naive design);
- fan-out: the same list for all targets at once (concurrent requests, and one
  ``GET /api/containers`` request) against one, at each ``--rtt-ms`` round-trip time
  (0: plain loopback; others through ``bench/delay_relay.py``, its own process);
- the CPU of every process on the machine during the loopback fan-out, grouped (app,
  client, the "remote" side: sshd, dial-stdio, dockerd), and the floor it sets on this
  machine's cores. The app runs as ``archnest serve`` in its own process, as deployed
  (``--in-process``: on this process's loop, sharing it with the client).

    python bench/ssh_list.py [--testenv-file F] [--rounds 25] [--targets 10]
                             [--rtt-ms 0,2,10,30] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.testenv and bench._common

from bench._common import proc_cpu  # noqa: E402

LABEL = "archnest.bench.ssh"


def ensure_containers(env, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    running = env.docker("ps", "-q").split()
    made = []
    for i in range(max(0, count - len(running))):
        made.append(
            env.run_container(f"bench-ssh-{i}", labels={LABEL: "1"}, env={"API_TOKEN": "x"})
        )
    return made


def timed(cmd: list[str], env_vars: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env_vars, check=True, capture_output=True)
    return time.perf_counter() - start


async def local_ps(env_vars: dict[str, str], count: int) -> float:
    """``count`` concurrent local ``docker ps`` runs: the floor a fan-out can reach when
    every "remote" host is this same machine."""
    cmd = ["docker", "ps", "--no-trunc", "--format", "{{json .}}"]
    start = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            *cmd, env=env_vars, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(count)
    ]
    await asyncio.gather(*(p.wait() for p in procs))
    return time.perf_counter() - start


class InProcessApp:
    """The app on this process's event loop (its CPU includes the benchmark's client)."""

    async def start(self) -> tuple[str, dict[str, str]]:
        from aiohttp import web
        from archnest import DB_KEY, Settings, create_app
        from archnest.users import create_token, create_user

        settings = Settings(
            data_dir=Path(tempfile.mkdtemp(prefix="archnest-bench-ssh-")),
            secret_key="bench-secret-key",
            admin_password="bench-admin-password",
            host_timeout=30.0,
            plugin_env={"ARCHNEST_ADD_LOCAL_DOCKER": "0"},
        )
        app = create_app(settings)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        await create_user(app[DB_KEY], "bench", "bench-password-1", "admin")
        return base, {"Authorization": "Bearer " + await create_token(app[DB_KEY], "bench")}

    def cpu(self) -> float:
        return time.process_time()

    async def stop(self) -> None:
        await self.runner.cleanup()


class SeparateProcessApp:
    """``archnest serve`` in its own process, as deployed: the client's work (HTTP, JSON)
    runs in this process, and the app's CPU is read from /proc."""

    async def start(self) -> tuple[str, dict[str, str]]:
        from tests.testenv.serve import ServedApp

        self.served = await ServedApp({"ARCHNEST_HOST_TIMEOUT": "30"}).__aenter__()
        self.proc = self.served.proc
        return self.served.base, self.served.headers

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    async def stop(self) -> None:
        await self.served.__aexit__()


def process_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process on the machine: pid -> (name, seconds)."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            out[int(entry.name)] = (name, proc_cpu(int(entry.name)))
        except OSError:
            continue  # gone meanwhile
    return out


def cpu_split(before: dict, after: dict, app_pid: int | None) -> dict[str, float]:
    """Seconds of CPU per group of processes between two ``process_cpu`` snapshots.

    The "remote" groups are what ten separate hosts would each run on their own CPUs:
    sshd, the ``docker system dial-stdio`` relay and dockerd answering the list.
    """
    groups: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        # By pid: a kernel worker renames itself after the queue it serves.
        spent = seconds - before.get(pid, ("", 0.0))[1]
        if spent <= 0 or pid == os.getpid():  # the client is timed on its own
            continue
        if pid == app_pid:
            group = "app"
        elif name in ("dockerd", "containerd", "sshd", "docker"):
            group = "remote"
        elif name.startswith(("kworker", "ksoftirq")):
            group = "kernel"
        else:
            group = "other"
        groups[group] = groups.get(group, 0.0) + spent
    return groups


class DelayRelay:
    """``bench/delay_relay.py`` in its own process: the targets behind an emulated RTT."""

    def __init__(self, port: int, rtt_ms: float) -> None:
        script = Path(__file__).with_name("delay_relay.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--to", f"127.0.0.1:{port}", "--rtt-ms", str(rtt_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def run(args: argparse.Namespace, env) -> dict:  # type: ignore[no-untyped-def]
    logging.basicConfig(level=logging.WARNING)
    server = InProcessApp() if args.in_process else SeparateProcessApp()
    base, headers = await server.start()
    app_pid = None if args.in_process else server.proc.pid
    made = ensure_containers(env, args.containers)
    relays = {rtt: DelayRelay(env.ssh_target.port, rtt) for rtt in args.rtt_ms if rtt > 0}
    try:
        async with aiohttp.ClientSession(base, headers=headers) as http:

            async def add_targets(port: int, tag: str) -> list[int]:
                ids = []
                for i in range(args.targets):
                    body = {
                        "name": f"bench-{tag}-{i}",
                        "host": "127.0.0.1",
                        "port": port,
                        "username": env.ssh.username,
                        "auth": "key",
                        "private_key": env.ssh.private_key,
                        "host_keys": [env.ssh_target.host_key],
                        "docker": True,
                    }
                    async with http.post("/api/ssh/targets", json=body) as r:
                        ids.append((await r.json())["id"])
                return ids

            # Per emulated RTT, its own targets (0: straight to sshd, no relay).
            targets = {
                rtt: await add_targets(
                    relays[rtt].port if rtt > 0 else env.ssh_target.port, f"{rtt:g}ms"
                )
                for rtt in args.rtt_ms
            }
            ids = targets[0.0]

            async def ours(tid: int) -> float:
                start = time.perf_counter()
                async with http.get(f"/api/docker-ssh/hosts/{tid}/containers") as r:
                    assert r.status == 200, await r.text()
                    items = await r.json()
                assert len(items) >= args.containers
                return time.perf_counter() - start

            async def fan_out(tids: list[int]) -> float:
                start = time.perf_counter()
                await asyncio.gather(*(ours(t) for t in tids))
                return time.perf_counter() - start

            async def aggregated(tids: list[int]) -> float:
                # One request listing many hosts (GET /api/containers), the way a page
                # showing every host's containers asks for them.
                query = "&".join(f"host=ssh:{t}" for t in tids)
                start = time.perf_counter()
                async with http.get("/api/containers?" + query) as r:
                    assert r.status == 200, await r.text()
                    body = await r.json()
                assert all(h["status"] == "ok" for h in body["hosts"]), body["hosts"]
                return time.perf_counter() - start

            for tids in targets.values():
                await fan_out(tids)  # warm every pooled connection
            cli_env = env.docker_ssh_cli_env()
            ssh_cmd = ["ssh", "-F", env.ssh_config_path, "target", "docker", "ps"]
            keys = ["ours", "cli", "ssh", "local_one", "local_fan", "one_cpu"]
            for rtt in args.rtt_ms:
                keys += [f"{k}@{rtt:g}" for k in ("one", "fan", "agg_one", "agg_fan")]
            samples: dict[str, list[float]] = {k: [] for k in keys}
            split: dict[str, float] = {}
            client_cpu = 0.0
            local_env = env.docker_cli_env()
            for _ in range(args.rounds):
                samples["ours"].append(await ours(ids[0]))
                samples["cli"].append(timed(["docker", "-H", "ssh://target", "ps"], cli_env))
                samples["ssh"].append(timed(ssh_cmd, cli_env))
                cpu = server.cpu()
                samples["one@0"].append(await ours(ids[0]))
                samples["one_cpu"].append(server.cpu() - cpu)
                # The app's share of the fan-out is its group in the split.
                before, mine = process_cpu(), time.process_time()
                samples["fan@0"].append(await fan_out(ids))
                client_cpu += time.process_time() - mine
                for group, spent in cpu_split(before, process_cpu(), app_pid).items():
                    split[group] = split.get(group, 0.0) + spent
                samples["agg_one@0"].append(await aggregated(ids[:1]))
                samples["agg_fan@0"].append(await aggregated(ids))
                for rtt, tids in targets.items():
                    if rtt > 0:
                        samples[f"one@{rtt:g}"].append(await ours(tids[0]))
                        samples[f"fan@{rtt:g}"].append(await fan_out(tids))
                        samples[f"agg_one@{rtt:g}"].append(await aggregated(tids[:1]))
                        samples[f"agg_fan@{rtt:g}"].append(await aggregated(tids))
                samples["local_one"].append(await local_ps(local_env, 1))
                samples["local_fan"].append(await local_ps(local_env, len(ids)))
    finally:
        await server.stop()
        for relay in relays.values():
            relay.stop()
        for cid in made:
            env.docker("rm", "-f", cid, check=False)
    # CPU per request: the mean over the rounds (a median of short readings would hide
    # the requests that paid for a garbage collection or a keepalive).
    med = {
        k: (statistics.fmean(v) if k.endswith("_cpu") else statistics.median(v))
        for k, v in samples.items()
    }
    listings = args.rounds * args.targets
    split["client"] = client_cpu
    per_listing = {group: spent / listings for group, spent in split.items()}
    if args.in_process:  # the app runs in this process, beside the client
        per_listing["app + client"] = per_listing.pop("client")
    cores = os.cpu_count() or 1
    # With every "remote" host on this machine, ten listings cannot take less than their
    # total CPU spread over its cores, nor (with a free app) less than the remote part.
    floor = sum(per_listing.values()) * args.targets / cores
    remote_floor = per_listing.get("remote", 0.0) * args.targets / cores
    # A model, not a measurement: with each host on its own machine, what stays serial
    # is the app's own CPU for the other hosts' answers on its one event loop.
    app_cpu = per_listing.get("app", per_listing.get("app + client", 0.0))
    separate = (med["one@0"] + (args.targets - 1) * app_cpu) / med["one@0"]
    return {
        "rounds": args.rounds,
        "targets": args.targets,
        "containers": args.containers,
        "cores": cores,
        "rtt_ms": args.rtt_ms,
        "median_seconds": med,
        "cpu_seconds_per_listing_in_fan_out": per_listing,
        "ours_over_docker_ssh": med["ours"] / med["cli"],
        "ours_over_ssh_docker_ps": med["ours"] / med["ssh"],
        "fan_out_over_one": {
            f"{rtt:g}": med[f"fan@{rtt:g}"] / med[f"one@{rtt:g}"] for rtt in args.rtt_ms
        },
        "aggregated_fan_out_over_one": {
            f"{rtt:g}": med[f"agg_fan@{rtt:g}"] / med[f"agg_one@{rtt:g}"] for rtt in args.rtt_ms
        },
        "cpu_floor_fan_out_over_one": floor / med["one@0"],
        "remote_cpu_floor_fan_out_over_one": remote_floor / med["one@0"],
        "separate_hosts_model_fan_out_over_one": separate,
        "local_docker_ps_fan_out_over_one": med["local_fan"] / med["local_one"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--testenv-file", help="JSON of a running tests.testenv (else start one)")
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--targets", type=int, default=10)
    p.add_argument("--containers", type=int, default=20)
    p.add_argument("--json", help="also write the figures here")
    p.add_argument(
        "--rtt-ms",
        default="0,2,10,30",
        help="emulated round-trip times to measure the fan-out at (0: plain loopback)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the app on the benchmark's own event loop (default: `archnest serve`)",
    )
    args = p.parse_args()
    if args.rounds < 20:
        raise SystemExit("--rounds must be at least 20")
    args.rtt_ms = sorted({0.0, *(float(x) for x in args.rtt_ms.split(",") if x.strip())})
    from tests.testenv import down, load, up

    env = load(args.testenv_file) if args.testenv_file else up()
    try:
        result = asyncio.run(run(args, env))
    finally:
        if not args.testenv_file:
            down(env)
    med = result["median_seconds"]
    n = result["targets"]
    print(f"rounds={result['rounds']} targets={n} containers>={args.containers}")
    print(f"ours (warm, pooled)          {med['ours'] * 1000:8.1f} ms")
    print(f"docker -H ssh://target ps    {med['cli'] * 1000:8.1f} ms")
    print(f"ssh target docker ps         {med['ssh'] * 1000:8.1f} ms")
    print(f"ours / docker -H ssh://      {result['ours_over_docker_ssh']:8.3f}  (target <= 0.2)")
    print(f"ours / ssh docker ps         {result['ours_over_ssh_docker_ps']:8.3f}")
    print()
    print("fan-out (target <= 2x); RTT 0 is loopback, others go through bench/delay_relay.py")
    print(f"  RTT    one   x{n} (requests)  ratio   one req 1 / {n} hosts   ratio")
    for rtt in args.rtt_ms:
        k = f"{rtt:g}"
        print(
            f"{rtt:4g} ms {med[f'one@{k}'] * 1000:6.1f} {med[f'fan@{k}'] * 1000:8.1f} ms"
            f"       {result['fan_out_over_one'][k]:5.2f}x"
            f"  {med[f'agg_one@{k}'] * 1000:7.1f} / {med[f'agg_fan@{k}'] * 1000:5.1f} ms"
            f"  {result['aggregated_fan_out_over_one'][k]:5.2f}x"
        )
    print()
    print(f"app process CPU, one (mean)  {med['one_cpu'] * 1000:8.2f} ms")
    print(f"CPU per listing during the loopback fan-out ({result['cores']} cores):")
    for group, spent in sorted(result["cpu_seconds_per_listing_in_fan_out"].items()):
        print(f"  {group:12s}               {spent * 1000:8.2f} ms")
    print(f"CPU floor of fan-out / one   {result['cpu_floor_fan_out_over_one']:8.2f}x")
    print(f"  remote part alone          {result['remote_cpu_floor_fan_out_over_one']:8.2f}x")
    model = result["separate_hosts_model_fan_out_over_one"]
    print(f"model, {n} separate hosts     {model:8.2f}x  (one + {n - 1} x app CPU) / one")
    print(f"local docker ps x1           {med['local_one'] * 1000:8.1f} ms")
    print(f"local docker ps x{n} at once   {med['local_fan'] * 1000:8.1f} ms")
    ratio = result["local_docker_ps_fan_out_over_one"]
    print(f"local fan-out / one          {ratio:8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
