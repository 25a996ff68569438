"""Benchmark: a marker line found by the log search across many containers and hosts.

Needs the test environment (isolated dockerd + loopback sshd): a running one
(``--testenv-file F``) or the script starts and stops its own. It serves ArchNest as its
own process (SQLite), registers the test dockerd as a ``docker`` host (Engine API, unix
socket) and, through the test sshd, as an ``ssh`` host (the same engine reached both
ways), runs ``--containers`` containers printing ``--lines`` lines of about 60 bytes
(one compose project, unique names), one of them with a marker line in the middle,
then times ``GET /api/logs/search?q=MARKER&project=P`` over all of them:

- per source (docker, ssh) and over both hosts at once: seconds until the marker's
  result line arrived, and until the summary (every line read), p50 of ``--runs``;
- the baseline: ``docker logs C 2>&1 | grep -F MARKER`` for each container in turn
  with the CLI (on the engine's unix socket, and over ``ssh target docker logs``).

    python bench/log_search.py [--testenv-file F] [--containers 10] [--lines 10000]
                               [--runs 5] [--json out.json]

Exits non-zero when a search did not find the marker exactly once per host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.testenv and bench.*

from bench.log_download import register  # noqa: E402

LABEL = "com.docker.compose.project"
PAD = "of the log search bench, padded to about sixty bytes"


def printer(lines: int, marker: str | None) -> list[str]:
    edit = f"; {lines // 2}s/$/ {marker}/" if marker else ""
    return ["sh", "-c", f"seq 1 {lines} | sed 's/.*/line & {PAD}/{edit}'"]


def make_containers(env: Any, prefix: str, n: int, lines: int, marker: str) -> list[str]:
    """The containers with their logs, each made again if it is missing (the test
    dockerd is shared with test runs, some of which remove every container)."""
    names = [f"{prefix}-{i}" for i in range(n)]
    labels = {"com.docker.compose.project": prefix}
    for _ in range(5):
        have = set(env.docker("ps", "-a", "--filter", f"label={LABEL}={prefix}",
                              "--format", "{{.Names}}").split())  # fmt: skip
        missing = [(i, name) for i, name in enumerate(names) if name not in have]
        if not missing:
            return names
        for i, name in missing:
            env.docker("rm", "-f", name, check=False)
            marked = marker if i == n // 2 else None
            env.run_container(name, printer(lines, marked), labels=labels)
        for _, name in missing:
            env.docker("wait", name, timeout=300, check=False)
    raise RuntimeError("the bench containers keep disappearing")


async def timed_search(http: aiohttp.ClientSession, url: str, headers: dict) -> dict[str, Any]:
    start = time.perf_counter()
    found = None
    rows: list[dict] = []
    summary: dict = {}
    async with http.get(url, headers=headers) as r:
        assert r.status == 200, await r.text()
        async for raw in r.content:
            obj = json.loads(raw)
            if "text" in obj:
                rows.append(obj)
                found = found or time.perf_counter() - start
            else:
                summary = obj
    return {"found": found, "total": time.perf_counter() - start, "rows": rows, "summary": summary}


def baseline(env: Any, names: list[str], marker: str, over_ssh: bool) -> float:
    """Sequential ``docker logs C 2>&1 | grep -F MARKER`` with the CLI, in seconds."""
    from tests.testenv import dockerd

    start = time.perf_counter()
    for name in names:
        if over_ssh:
            remote = f"docker logs {shlex.quote(name)} 2>&1 | grep -F {shlex.quote(marker)}"
            env.ssh_cli("target", remote, check=False)
        else:
            cmd = f"{shlex.quote(dockerd.docker_binary())} logs {shlex.quote(name)} 2>&1"
            cmd += f" | grep -F {shlex.quote(marker)}"
            subprocess.run(["sh", "-c", cmd], env=env.docker_cli_env(), capture_output=True)
    return time.perf_counter() - start


async def run(env: Any, containers: int, lines: int, runs: int) -> dict[str, Any]:
    from tests.testenv.serve import ServedApp

    prefix = f"bench-ls-{secrets.token_hex(3)}"
    marker = f"MARKER-{secrets.token_hex(4)}"
    out: dict[str, Any] = {"containers": containers, "lines": lines, "runs": runs, "p50": {}}
    names: list[str] = []
    try:
        names = make_containers(env, prefix, containers, lines, marker)
        async with ServedApp({"ARCHNEST_HOST_TIMEOUT": "30"}) as app:
            async with aiohttp.ClientSession() as http:
                hosts = await register(http, app.base, app.headers, env)
                cases = {**{k: [v] for k, v in hosts.items()}, "both": list(hosts.values())}
                for case, ids in cases.items():
                    make_containers(env, prefix, containers, lines, marker)
                    query = [("q", marker), ("project", prefix)] + [("host", h) for h in ids]
                    url = f"{app.base}/api/logs/search?" + "&".join(f"{k}={v}" for k, v in query)
                    await timed_search(http, url, app.headers)  # warm-up: connections
                    samples = []
                    for _ in range(runs * 4):  # a run that lost containers is run again
                        make_containers(env, prefix, containers, lines, marker)
                        s = await timed_search(http, url, app.headers)
                        done = s["summary"].get("done") and not s["summary"]["errors"]
                        want = containers * lines * len(ids)
                        if done and s["summary"]["scanned"] == want:
                            if len(s["rows"]) != len(ids):  # every line read, marker missed
                                out.setdefault("failures", []).append({case: s["summary"]})
                            samples.append(s)
                        if len(samples) == runs:
                            break
                    if not samples:
                        out.setdefault("failures", []).append({case: "no complete run"})
                        continue
                    out["p50"][case] = {
                        "found_s": round(statistics.median(s["found"] or 0 for s in samples), 3),
                        "total_s": round(statistics.median(s["total"] for s in samples), 3),
                    }
        for over_ssh in (False, True):
            make_containers(env, prefix, containers, lines, marker)
            key = "cli grep over ssh" if over_ssh else "cli grep (unix socket)"
            times = [baseline(env, names, marker, over_ssh) for _ in range(runs)]
            out["p50"][key] = {"found_s": None, "total_s": round(statistics.median(times), 3)}
    finally:
        if names:
            env.docker("rm", "-f", *names, check=False)
    return out


def report(result: dict[str, Any]) -> str:
    rows = [
        f"{result['containers']} containers x {result['lines']:,} lines, one marker; "
        f"p50 of {result['runs']} runs",
        f"{'search':<28}{'marker found s':>16}{'all read s':>12}",
    ]
    for name, r in result["p50"].items():
        found = "-" if r["found_s"] is None else f"{r['found_s']:.3f}"
        rows.append(f"{name:<28}{found:>16}{r['total_s']:>12.3f}")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--testenv-file", help="a running test environment (its JSON file)")
    p.add_argument("--containers", type=int, default=10)
    p.add_argument("--lines", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    from tests.testenv import down, load, up

    env = load(args.testenv_file) if args.testenv_file else up()
    try:
        result = asyncio.run(run(env, args.containers, args.lines, args.runs))
    finally:
        if not args.testenv_file:
            down(env)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if result.get("failures"):
        print(f"searches that missed: {result['failures']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
