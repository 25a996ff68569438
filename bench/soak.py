"""Soak: minutes of mixed traffic against `archnest serve`; what the app holds must come
back to where it started.

Needs the test environment (isolated dockerd + loopback sshd, as root): a running one
(``--testenv-file F``) or the script starts and stops its own. It runs ``archnest serve``
as its own process (temporary data dir, SQLite, an agent token), registers the Docker
engine over its unix socket and over plain TCP, and the test sshd as an SSH docker host,
starts two containers (one logging ten lines a second, one idle for terminals), then
runs concurrent workers, all on loopback:

- lists: each host's containers, the host index, the all-hosts list, an agent host;
- details: a container on each host (the SSH one runs ``docker inspect`` and ``stats``);
- follows: ``?follow=1`` opened on a random host, read for a while, then dropped by the
  client in the middle of the stream;
- terminals: ``WS /api/exec`` opened, a command echoed, closed (every third one ends
  with ``exit`` typed in the shell instead);
- agent reports: ``POST /api/agents/docker/report`` for ten agent hosts in turn.

After a warm-up (``--warmup`` seconds of the same traffic) the traffic pauses, the app
settles, and the start sample is taken; after ``--minutes`` of traffic the end sample
is taken the same way (traffic stopped, our client connections closed, up to
``SETTLE_SECONDS`` for dropped streams to be noticed). A sample: the app's open file
descriptors (``/proc/PID/fd``), its RSS (``VmRSS``), its TCP connections to sshd and
the SSH channels' remote processes (everything the test sshd runs that is not sshd
itself: followed ``docker logs -f``, terminals, the Engine API relay), its connected
unix sockets (the engine over its socket) and threads.

Bounds (exit status 1 beyond any of them):

- file descriptors: end <= start + 10;
- SSH channels (remote processes): end <= start + 2; SSH connections: end <= start + 1;
- RSS: end <= start + max(30 MiB, 20 % of start);
- failed requests: at most 1 % of all requests (a 429 counts as failed: the traffic
  stays under the stream bounds).

    python bench/soak.py [--testenv-file F] [--minutes 10] [--warmup 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.testenv and the shared /proc readers

from bench._common import rss_bytes  # noqa: E402

MIB = 1024 * 1024
FD_BOUND = 10
CHANNEL_BOUND = 2
SSH_CONNECTION_BOUND = 1
RSS_BOUND_BYTES = 30 * MIB
RSS_BOUND_RATIO = 0.20
FAILED_RATIO_BOUND = 0.01
# Dropped streams are noticed on the server's next write; this is plenty for that.
SETTLE_SECONDS = 30.0
AGENT_TOKEN = "soak-agent-token-" + secrets.token_hex(16)
CHATTY = ["sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done"]
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


# --- what the app holds --------------------------------------------------------------


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def ssh_channels(sshd_pid: int) -> int:
    """Processes the test sshd runs for its sessions, sshd itself excluded: one or more
    per open channel with a command (each connection's own sshd processes are not)."""
    from tests.abuse.resources import descendants

    return sum(1 for _, cmd in descendants(sshd_pid) if not cmd.startswith("sshd"))


def sample(pid: int, env: Any) -> dict[str, int]:  # env: tests.testenv.TestEnv
    from tests.abuse.resources import fd_count, tcp_connections_to, unix_connections_to

    return {
        "fds": fd_count(pid),
        "rss_bytes": rss_bytes(pid),
        "ssh_channels": ssh_channels(env.ssh_target.pid),
        "ssh_connections": tcp_connections_to(env.ssh_target.port, pid),
        "unix_connections": unix_connections_to(env.docker_socket, pid),
        "threads": threads(pid),
    }


def over_bounds(start: dict[str, int], end: dict[str, int]) -> list[str]:
    """Each resource that grew beyond its bound, as a sentence; empty when all are in."""
    rss_allowed = max(RSS_BOUND_BYTES, int(start["rss_bytes"] * RSS_BOUND_RATIO))
    checks = [
        ("fds", FD_BOUND),
        ("ssh_channels", CHANNEL_BOUND),
        ("ssh_connections", SSH_CONNECTION_BOUND),
        ("rss_bytes", rss_allowed),
    ]
    return [
        f"{name}: {start[name]} -> {end[name]} (+{end[name] - start[name]}, bound +{bound})"
        for name, bound in checks
        if end[name] - start[name] > bound
    ]


# --- traffic -------------------------------------------------------------------------


@dataclass
class Tally:
    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def fail(self, kind: str, why: str) -> None:
        self.failed[f"{kind} {why.split(':', 1)[0]}"] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{kind}: {why}")


@dataclass
class Hosts:
    docker: list[str]  # docker:N host ids (unix socket, plain TCP)
    ssh: list[str]  # ssh:N
    chatty: str
    idle: str

    @property
    def all(self) -> list[str]:
        return self.docker + self.ssh


class Traffic:
    """The workers of one phase; each loops until ``deadline`` (a bounded run)."""

    def __init__(self, base: str, headers: dict[str, str], hosts: Hosts, tally: Tally) -> None:
        self.base, self.headers, self.hosts, self.tally = base, headers, hosts, tally
        self.rng = random.Random(7)
        self.terminals = 0
        self.reports = 0

    async def _get_json(self, http: aiohttp.ClientSession, kind: str, path: str) -> None:
        try:
            async with http.get(path, headers=self.headers) as r:
                await r.read()
                if r.status == 200:
                    self.tally.ok[kind] += 1
                else:
                    self.tally.fail(kind, f"{r.status}: {path}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.fail(kind, f"{type(exc).__name__}: {path}")

    async def lists(self, http: aiohttp.ClientSession) -> None:
        h = self.hosts
        paths = [f"/api/hosts/{host}/containers" for host in h.all]
        paths += ["/api/hosts", "/api/containers", "/api/hosts/agent:soak-agent-0/containers"]
        await self._get_json(http, "list", self.rng.choice(paths))

    async def details(self, http: aiohttp.ClientSession) -> None:
        host = self.rng.choice(self.hosts.all)
        await self._get_json(http, "detail", f"/api/hosts/{host}/containers/{self.hosts.chatty}")

    async def follow(self, http: aiohttp.ClientSession) -> None:
        host = self.rng.choice(self.hosts.all)
        path = f"/api/hosts/{host}/containers/{self.hosts.chatty}/logs?follow=1&tail=5"
        hold = self.rng.choice([0.0, 0.3, 1.0, 2.5])
        try:
            async with asyncio.timeout(hold + 20):
                resp = await http.get(path, headers=self.headers)
                try:
                    if resp.status != 200:
                        self.tally.fail("follow", f"{resp.status}: {host}")
                        return
                    lines, until = 0, time.monotonic() + hold
                    while lines == 0 or time.monotonic() < until:
                        raw = await resp.content.readline()
                        if not raw:
                            self.tally.fail("follow", f"ended early: {host}")
                            return
                        lines += raw.startswith(b"data: ")
                    self.tally.ok["follow"] += 1
                finally:
                    resp.close()  # dropped by the client in the middle of the stream
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.fail("follow", f"{type(exc).__name__}: {host}")

    async def terminal(self, http: aiohttp.ClientSession) -> None:
        host = self.rng.choice(self.hosts.all)
        path = f"/api/exec?host={host}&container={self.hosts.idle}&cmd=sh"
        self.terminals += 1
        marker = f"soak-{self.terminals}"
        try:
            async with asyncio.timeout(20):
                async with http.ws_connect(path, headers=self.headers) as ws:
                    # Quoted: the echoed input is not the answer.
                    await ws.send_str(f"echo soak''-{self.terminals}\n")
                    seen = ""
                    while marker not in seen:
                        msg = await ws.receive()
                        if msg.type != aiohttp.WSMsgType.BINARY:
                            self.tally.fail("terminal", f"{msg.type.name} before output: {host}")
                            return
                        seen += msg.data.decode(errors="replace")
                    if self.terminals % 3 == 0:
                        await ws.send_str("exit\n")
                        while (await ws.receive()).type == aiohttp.WSMsgType.BINARY:
                            pass
                    self.tally.ok["terminal"] += 1
        except aiohttp.WSServerHandshakeError as exc:
            self.tally.fail("terminal", f"{exc.status}: {host}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.fail("terminal", f"{type(exc).__name__}: {host}")

    async def agent_report(self, http: aiohttp.ClientSession, body: list[bytes]) -> None:
        self.reports += 1
        data = body[self.reports % len(body)]
        auth = {"Authorization": f"Bearer {AGENT_TOKEN}", "Content-Type": "application/json"}
        try:
            async with http.post("/api/agents/docker/report", data=data, headers=auth) as r:
                await r.read()
                if r.status == 204:
                    self.tally.ok["agent_report"] += 1
                else:
                    self.tally.fail("agent_report", str(r.status))
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.fail("agent_report", type(exc).__name__)

    async def run(self, seconds: float) -> None:
        """Every worker until the deadline, then the client's connections are closed."""
        from tests.agent.payloads import make_report

        reports = [json.dumps(make_report(f"soak-agent-{i}", 20)).encode() for i in range(10)]
        deadline = time.monotonic() + seconds
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(self.base, timeout=timeout) as http:

            async def loop(step: Callable[[], Awaitable[None]], pause: float) -> None:
                while time.monotonic() < deadline:
                    await step()
                    await asyncio.sleep(pause)

            workers = [
                loop(lambda: self.lists(http), 0.02),
                loop(lambda: self.lists(http), 0.02),
                loop(lambda: self.details(http), 0.05),
                loop(lambda: self.follow(http), 0.05),
                loop(lambda: self.follow(http), 0.05),
                loop(lambda: self.follow(http), 0.05),
                loop(lambda: self.terminal(http), 0.1),
                loop(lambda: self.agent_report(http, reports), 0.05),
            ]
            await asyncio.gather(*workers)


# --- the run -------------------------------------------------------------------------


async def settled_sample(pid: int, env: Any, start: dict[str, int] | None) -> dict[str, int]:
    """A sample once dropped streams are released: polled until every bound holds
    against ``start`` (or, for the start sample, until two samples agree), at most
    SETTLE_SECONDS."""
    await asyncio.sleep(1.0)
    deadline = time.monotonic() + SETTLE_SECONDS
    previous = sample(pid, env)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        current = sample(pid, env)
        if start is not None and not over_bounds(start, current):
            return current
        stable = ("fds", "ssh_channels", "ssh_connections")
        if start is None and all(current[k] == previous[k] for k in stable):
            return current
        previous = current
    return previous


async def setup(http: aiohttp.ClientSession, headers: dict[str, str], env: Any) -> Hosts:
    from tests.agent.payloads import make_report
    from tests.ssh.conftest import target_payload

    docker = []
    for name, url in (("soak-unix", env.docker_unix_url), ("soak-tcp", env.docker_tcp_url)):
        async with http.post(
            "/api/docker/hosts", json={"name": name, "url": url}, headers=headers
        ) as r:
            if r.status != 201:
                raise SystemExit(f"adding engine {name}: {r.status} {await r.text()}")
            docker.append(f"docker:{(await r.json())['id']}")
    body = target_payload(env, env.ssh_target, "key", name="soak-ssh", docker=True)
    async with http.post("/api/ssh/targets", json=body, headers=headers) as r:
        if r.status != 201:
            raise SystemExit(f"adding the SSH target: {r.status} {await r.text()}")
        ssh = [f"ssh:{(await r.json())['id']}"]
    # The agent host the lists read exists from the start.
    auth = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    async with http.post(
        "/api/agents/docker/report", json=make_report("soak-agent-0", 20), headers=auth
    ) as r:
        if r.status != 204:
            raise SystemExit(f"the first agent report: {r.status} {await r.text()}")
    tag = secrets.token_hex(3)
    chatty, idle = f"soak-chatty-{tag}", f"soak-idle-{tag}"
    env.run_container(chatty, CHATTY)
    env.run_container(idle, IDLE)
    return Hosts(docker, ssh, chatty, idle)


async def run(args: argparse.Namespace, env: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="archnest-soak-") as tmp:
        log_path = Path(tmp) / "serve.log"
        result = await soak(args, env, Path(tmp) / "data", log_path)
        result["log_tail"] = log_path.read_text(errors="replace")[-3000:]
    return result


async def soak(args: argparse.Namespace, env: Any, data_dir: Path, log_path: Path) -> dict:
    from tests.testenv.serve import ServedApp

    served = ServedApp(
        {"ARCHNEST_AGENT_TOKEN": AGENT_TOKEN, "ARCHNEST_HOST_TIMEOUT": "10"},
        data_dir=str(data_dir),
        log_path=log_path,
    )
    hosts: Hosts | None = None
    async with served:
        assert served.proc is not None
        pid = served.proc.pid
        try:
            async with aiohttp.ClientSession(served.base) as http:
                hosts = await setup(http, served.headers, env)
            warm = Tally()
            await Traffic(served.base, served.headers, hosts, warm).run(args.warmup)
            start = await settled_sample(pid, env, None)
            started_at = datetime.now(UTC)
            tally = Tally()
            began = time.monotonic()
            await Traffic(served.base, served.headers, hosts, tally).run(args.minutes * 60)
            seconds = time.monotonic() - began
            end = await settled_sample(pid, env, start)
            alive = served.proc.poll() is None
        finally:
            if hosts is not None:
                env.docker("rm", "-f", hosts.chatty, hosts.idle, check=False)
    requests = sum(tally.ok.values()) + sum(tally.failed.values())
    return {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": round(seconds / 60, 2),
        "warmup_seconds": args.warmup,
        "hosts": {"docker": hosts.docker, "ssh": hosts.ssh},
        "start": start,
        "end": end,
        "delta": {k: end[k] - start[k] for k in start},
        "bounds": {
            "fds": f"+{FD_BOUND}",
            "ssh_channels": f"+{CHANNEL_BOUND}",
            "ssh_connections": f"+{SSH_CONNECTION_BOUND}",
            "rss": f"+max({RSS_BOUND_BYTES // MIB} MiB, {RSS_BOUND_RATIO:.0%})",
            "failed_requests": f"<= {FAILED_RATIO_BOUND:.0%}",
        },
        "over_bounds": over_bounds(start, end),
        "requests": requests,
        "ok": dict(tally.ok),
        "failed": dict(tally.failed),
        "failed_examples": tally.examples,
        "warmup_failed": dict(warm.failed),
        "app_alive": alive,
    }


def verdict(result: dict[str, Any]) -> list[str]:
    problems = list(result["over_bounds"])
    failed = sum(result["failed"].values())
    if failed > FAILED_RATIO_BOUND * max(1, result["requests"]):
        problems.append(f"{failed} of {result['requests']} requests failed")
    if not result["app_alive"]:
        problems.append("archnest serve exited during the soak")
    return problems


def report(result: dict[str, Any]) -> None:
    s, e, d = result["start"], result["end"], result["delta"]
    print(f"soak {result['date']}: {result['minutes']} min after {result['warmup_seconds']} s")
    print(f"{'':18s}{'start':>12s}{'end':>12s}{'delta':>10s}   bound")
    bounds = result["bounds"]
    for key, label, bound in (
        ("fds", "file descriptors", bounds["fds"]),
        ("ssh_channels", "SSH channels", bounds["ssh_channels"]),
        ("ssh_connections", "SSH connections", bounds["ssh_connections"]),
        ("unix_connections", "unix sockets", ""),
        ("threads", "threads", ""),
    ):
        print(f"{label:18s}{s[key]:12d}{e[key]:12d}{d[key]:+10d}   {bound}")
    print(
        f"{'RSS (MiB)':18s}{s['rss_bytes'] / MIB:12.1f}{e['rss_bytes'] / MIB:12.1f}"
        f"{d['rss_bytes'] / MIB:+10.1f}   {bounds['rss']}"
    )
    ok = ", ".join(f"{k} {v}" for k, v in sorted(result["ok"].items()))
    print(f"requests {result['requests']}: {ok}")
    if result["failed"]:
        print(f"failed: {result['failed']}")
        for line in result["failed_examples"][:10]:
            print(f"  {line}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--testenv-file", help="JSON of a running tests.testenv (else start one)")
    p.add_argument("--minutes", type=float, default=10.0, help="traffic after the warm-up")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds of traffic before start")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    if not 0 < args.minutes <= 24 * 60 or not 0 <= args.warmup <= 600:
        raise SystemExit("--minutes must be in (0, 1440] and --warmup in [0, 600]")
    from tests.testenv import down, load, up

    env = load(args.testenv_file) if args.testenv_file else up()
    try:
        result = asyncio.run(run(args, env))
    finally:
        if not args.testenv_file:
            down(env)
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    problems = verdict(result)
    if problems:
        print("FAILED: " + "; ".join(problems))
        if result["log_tail"]:
            print("--- archnest serve log (tail) ---\n" + result["log_tail"])
        sys.exit(1)
    print("within bounds")


if __name__ == "__main__":
    main()
