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
- fan-out: the same list for all targets at once (concurrent requests) against one;
- the CPU time of the app process for one listing and for the fan-out: the part of the
  fan-out that one event loop serialises. The app runs as ``archnest serve`` in its own
  process, as deployed (``--in-process``: on this process's loop, sharing it with the
  client).

    python bench/ssh_list.py [--testenv-file F] [--rounds 25] [--targets 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.testenv

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
        from archnest.auth import create_token, create_user

        settings = Settings(
            data_dir=Path(tempfile.mkdtemp(prefix="archnest-bench-ssh-")),
            secret_key="bench-secret-key",
            admin_password="bench-admin-password",
            add_local_docker=False,
            host_timeout=30.0,
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
        tmp = tempfile.mkdtemp(prefix="archnest-bench-ssh-")
        self.env = {
            **os.environ,
            "ARCHNEST_DATA_DIR": tmp,
            "ARCHNEST_SECRET_KEY": "bench-secret-key",
            "ARCHNEST_ADMIN_PASSWORD": "bench-admin-password",
            "ARCHNEST_ADD_LOCAL_DOCKER": "0",
            "ARCHNEST_HOST_TIMEOUT": "30",
        }
        cli = [sys.executable, "-m", "archnest"]
        subprocess.run([*cli, "db", "upgrade"], env=self.env, check=True, capture_output=True)
        subprocess.run(
            [*cli, "user", "add", "bench", "--admin", "--password-stdin"],
            env=self.env,
            input="bench-password-1\n",
            text=True,
            check=True,
            capture_output=True,
        )
        token = subprocess.run(
            [*cli, "token", "create", "bench"],
            env=self.env,
            text=True,
            check=True,
            capture_output=True,
        ).stdout.strip()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [*cli, "serve", "--port", str(port), "--log-level", "WARNING"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("archnest serve did not come up")
        return base, {"Authorization": "Bearer " + token}

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def run(args: argparse.Namespace, env) -> dict:  # type: ignore[no-untyped-def]
    logging.basicConfig(level=logging.WARNING)
    server = InProcessApp() if args.in_process else SeparateProcessApp()
    base, headers = await server.start()
    made = ensure_containers(env, args.containers)
    try:
        async with aiohttp.ClientSession(base, headers=headers) as http:
            ids = []
            for i in range(args.targets):
                body = {
                    "name": f"bench-{i}",
                    "host": "127.0.0.1",
                    "port": env.ssh_target.port,
                    "username": env.ssh.username,
                    "auth": "key",
                    "private_key": env.ssh.private_key,
                    "host_keys": [env.ssh_target.host_key],
                    "docker": True,
                }
                async with http.post("/api/ssh/targets", json=body) as r:
                    ids.append((await r.json())["id"])

            async def ours(tid: int) -> float:
                start = time.perf_counter()
                async with http.get(f"/api/docker-ssh/hosts/{tid}/containers") as r:
                    assert r.status == 200, await r.text()
                    items = await r.json()
                assert len(items) >= args.containers
                return time.perf_counter() - start

            async def fan_out() -> float:
                start = time.perf_counter()
                await asyncio.gather(*(ours(t) for t in ids))
                return time.perf_counter() - start

            async def aggregated(query: str) -> float:
                # One request listing many hosts (GET /api/containers), the way a page
                # showing every host's containers asks for them.
                start = time.perf_counter()
                async with http.get("/api/containers?" + query) as r:
                    assert r.status == 200, await r.text()
                    body = await r.json()
                assert all(h["status"] == "ok" for h in body["hosts"]), body["hosts"]
                return time.perf_counter() - start

            one_query = f"host=ssh:{ids[0]}"
            all_query = "&".join(f"host=ssh:{t}" for t in ids)

            await fan_out()  # warm every pooled connection
            cli_env = env.docker_ssh_cli_env()
            ssh_cmd = ["ssh", "-F", env.ssh_config_path, "target", "docker", "ps"]
            keys = ("ours", "cli", "ssh", "one", "fan", "local_one", "local_fan")
            keys += ("one_cpu", "fan_cpu", "agg_one", "agg_fan")
            samples: dict[str, list[float]] = {k: [] for k in keys}
            local_env = env.docker_cli_env()
            for _ in range(args.rounds):
                samples["ours"].append(await ours(ids[0]))
                samples["cli"].append(timed(["docker", "-H", "ssh://target", "ps"], cli_env))
                samples["ssh"].append(timed(ssh_cmd, cli_env))
                cpu = server.cpu()
                samples["one"].append(await ours(ids[0]))
                samples["one_cpu"].append(server.cpu() - cpu)
                cpu = server.cpu()
                samples["fan"].append(await fan_out())
                samples["fan_cpu"].append(server.cpu() - cpu)
                samples["agg_one"].append(await aggregated(one_query))
                samples["agg_fan"].append(await aggregated(all_query))
                samples["local_one"].append(await local_ps(local_env, 1))
                samples["local_fan"].append(await local_ps(local_env, len(ids)))
    finally:
        await server.stop()
        for cid in made:
            env.docker("rm", "-f", cid, check=False)
    # CPU readings of a separate process tick in 1/100 s: their mean over the rounds
    # is meaningful where a median of single readings is not.
    med = {
        k: (statistics.fmean(v) if k.endswith("_cpu") else statistics.median(v))
        for k, v in samples.items()
    }
    return {
        "rounds": args.rounds,
        "targets": args.targets,
        "containers": args.containers,
        "median_seconds": med,
        "ours_over_docker_ssh": med["ours"] / med["cli"],
        "ours_over_ssh_docker_ps": med["ours"] / med["ssh"],
        "fan_out_over_one": med["fan"] / med["one"],
        "aggregated_fan_out_over_one": med["agg_fan"] / med["agg_one"],
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
        "--in-process",
        action="store_true",
        help="run the app on the benchmark's own event loop (default: `archnest serve`)",
    )
    args = p.parse_args()
    if args.rounds < 20:
        raise SystemExit("--rounds must be at least 20")
    from tests.testenv import down, load, up

    env = load(args.testenv_file) if args.testenv_file else up()
    try:
        result = asyncio.run(run(args, env))
    finally:
        if not args.testenv_file:
            down(env)
    med = result["median_seconds"]
    print(f"rounds={result['rounds']} targets={result['targets']} containers>={args.containers}")
    print(f"ours (warm, pooled)          {med['ours'] * 1000:8.1f} ms")
    print(f"docker -H ssh://target ps    {med['cli'] * 1000:8.1f} ms")
    print(f"ssh target docker ps         {med['ssh'] * 1000:8.1f} ms")
    print(f"ours / docker -H ssh://      {result['ours_over_docker_ssh']:8.3f}  (target <= 0.2)")
    print(f"ours / ssh docker ps         {result['ours_over_ssh_docker_ps']:8.3f}")
    print(f"one target                   {med['one'] * 1000:8.1f} ms")
    print(f"{result['targets']} targets at once          {med['fan'] * 1000:8.1f} ms")
    print(f"fan-out / one                {result['fan_out_over_one']:8.2f}  (target <= 2)")
    print(f"one request, 1 host          {med['agg_one'] * 1000:8.1f} ms  (GET /api/containers)")
    print(f"one request, {result['targets']} hosts        {med['agg_fan'] * 1000:8.1f} ms")
    agg = result["aggregated_fan_out_over_one"]
    print(f"one request: {result['targets']} hosts / 1    {agg:8.2f}  (target <= 2)")
    print(f"app process CPU, one (mean)  {med['one_cpu'] * 1000:8.1f} ms")
    print(f"app CPU, {result['targets']} at once (mean)  {med['fan_cpu'] * 1000:8.1f} ms")
    print(f"local docker ps x1           {med['local_one'] * 1000:8.1f} ms")
    print(f"local docker ps x{result['targets']} at once   {med['local_fan'] * 1000:8.1f} ms")
    ratio = result["local_docker_ps_fan_out_over_one"]
    print(f"local fan-out / one          {ratio:8.2f}  (this machine's floor)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
