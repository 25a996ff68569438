"""Agent ingest benchmark: sustained reports/s of a 50-container snapshot.

Starts the real app (same factory, real migrations) in a child process on 127.0.0.1,
then several concurrent senders POST schema-1 reports over loopback, bounded both in
count and in time. Afterwards the database itself is asked how many reports were
stored (``SUM(report_count)``): every 204 must be there ("lost" = 204s not in the DB).

    python bench/agent_ingest.py                          # SQLite in a temp dir
    python bench/agent_ingest.py --ingest-worker          # ARCHNEST_AGENT_INGEST_WORKER=1
    python bench/agent_ingest.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    python bench/agent_ingest.py --testenv-pg             # PostgreSQL of tests/testenv

For PostgreSQL a throw-away database is created on that server and dropped after.
Nothing is written outside a temporary directory; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.agent.payloads (the shared report builder)

TOKEN = "bench-agent-token-" + uuid.uuid4().hex


# --- server side (child process) -----------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    import logging

    from aiohttp import web
    from archnest import Settings, create_app, tune_interpreter

    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        data_dir=Path(args.data_dir),
        database_url=args.database_url,
        secret_key="bench-secret-key",
        admin_password="bench-admin-password",
        plugin_env={
            "ARCHNEST_AGENT_TOKEN": os.environ["BENCH_AGENT_TOKEN"],
            "ARCHNEST_ADD_LOCAL_DOCKER": "0",
            "ARCHNEST_AGENT_INGEST_WORKER": "1" if args.ingest_worker else "0",
        },
    )

    # --profile: the event loop's thread, on its CPU clock (time waiting in epoll, or
    # preempted by the client on a shared machine, does not count), from the end of the
    # warm-up (SIGUSR1 from the client) to the stop: the measured reports only. The
    # database driver's thread shows as server CPU minus loop CPU.
    import cProfile

    prof = cProfile.Profile(time.thread_time) if args.profile else None

    async def main() -> None:
        app = create_app(settings)
        # As `archnest serve` does (core/cli.py): the garbage collector and the GIL's
        # switch interval tuned for a server.
        tune_interpreter()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        Path(args.port_file).write_text(str(port))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if prof is not None:
            loop.add_signal_handler(signal.SIGUSR1, prof.enable)
        await stop.wait()
        if prof is not None:
            prof.disable()
            prof.dump_stats(args.profile)
        await runner.cleanup()  # drains the report writer before the DB closes

    asyncio.run(main())


# --- client side ---------------------------------------------------------------------


async def _stored_count(url: str) -> tuple[int, int]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT COUNT(*), COALESCE(SUM(report_count), 0) FROM docker_agent_reports"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    return int(row[0]), int(row[1])


class Reports:
    """The reports of ``hosts`` agents, report ``i`` from host ``i % hosts``.

    Like a real agent's: each report of a host has its own time, other stats samples
    than the host's previous one (four sets in turn), and on average a fraction
    ``churn`` of its containers changed since the host's previous report (restarted:
    ``RestartCount`` and ``State.StartedAt`` move on); the others are byte for byte what
    that host sent last time. Bodies are assembled from serialised pieces, so the
    client spends little CPU on them.
    """

    def __init__(self, hosts: int, containers: int, churn: float, seed: int = 1):
        import random

        import orjson

        from tests.agent.payloads import make_report

        self.hosts, self.churn, self._dumps = hosts, churn, orjson.dumps
        rng = random.Random(seed)
        self._reports = [make_report(f"bench-{h:03d}", containers) for h in range(hosts)]
        # Container j of a host has changed floor(r * churn + phase_j) times by the
        # host's report r: each report, a fraction churn of them changes.
        self._phase = [[rng.random() for _ in range(containers)] for _ in range(hosts)]
        self._pieces = [[self._dumps(c) for c in r["containers"]] for r in self._reports]
        self._versions = [[0] * containers for _ in range(hosts)]
        # Stats samples: a few sets per host, in turn (serialised once: client CPU).
        self._stats = [
            [
                self._dumps(
                    {
                        cid: {**s, "cpu_percent": (v * 7 + n) % 1000 / 10, "net_rx_bytes": v + n}
                        for n, (cid, s) in enumerate(r["stats"].items())
                    }
                )
                for v in range(4)
            ]
            for r in self._reports
        ]
        self.changed = 0  # containers changed since their host's previous report
        self.sent_containers = 0

    def body(self, i: int) -> bytes:
        h, r = i % self.hosts, i // self.hosts
        report, pieces, versions = self._reports[h], self._pieces[h], self._versions[h]
        for j, phase in enumerate(self._phase[h]):
            version = int(r * self.churn + phase)
            if version != versions[j]:
                versions[j] = version
                c = report["containers"][j]
                c["RestartCount"] = version
                c["State"]["StartedAt"] = f"2026-12-01T{version // 3600 % 24:02d}:" + (
                    f"{version // 60 % 60:02d}:{version % 60:02d}Z"
                )
                pieces[j] = self._dumps(c)
                self.changed += r > 0
        self.sent_containers += len(pieces) if r > 0 else 0
        stats = self._stats[h][r % len(self._stats[h])]
        head = {k: v for k, v in report.items() if k not in ("containers", "stats")}
        head["reported_at"] = f"2026-12-01T{r // 3600 % 24:02d}:{r // 60 % 60:02d}:{r % 60:02d}Z"
        return b"".join(
            (
                self._dumps(head)[:-1],
                b',"containers":[',
                b",".join(pieces),
                b'],"stats":',
                stats,
                b"}",
            )
        )


class _RawConnection:
    """One kept-alive HTTP/1.1 connection that POSTs a body and reads the answer.

    The bench's load generator shares the machine with the server it measures: this
    client writes the request in one go and parses only the status line and the
    Content-Length of the answer, which costs about half the CPU of a general client
    (``--client aiohttp`` for comparison). It is not a general HTTP client: the server
    under test is our own app, which answers with a Content-Length (never chunked).
    """

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.port = port
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        ).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        try:
            writer.write(b"%sContent-Length: %d\r\n\r\n" % (self._head, len(body)))
            writer.write(body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await reader.readexactly(length)
        except _CLIENT_ERRORS:
            await self.close()
            raise
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


_CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ValueError,
)


async def _send_all(
    port: int,
    reports: Reports,
    first: int,
    senders: int,
    total: int,
    duration: float,
    client: str = "raw",
) -> dict:
    path = "/api/agents/docker/report"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    next_index = 0
    ok = 0
    errors: dict[str, int] = {}
    latencies: list[float] = []
    deadline = time.monotonic() + duration

    async with contextlib.AsyncExitStack() as stack:
        if client == "aiohttp":
            import aiohttp

            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=senders))
            )
            failures = (aiohttp.ClientError, *_CLIENT_ERRORS)
            url = f"http://127.0.0.1:{port}{path}"

            async def aiohttp_post(body: bytes) -> int:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    return r.status

            def poster() -> Any:
                return aiohttp_post
        else:
            failures = _CLIENT_ERRORS

            def poster() -> Any:
                conn = _RawConnection(port, path, headers)
                stack.push_async_callback(conn.close)
                return conn.post

        async def sender() -> None:
            nonlocal next_index, ok
            post = poster()
            while time.monotonic() < deadline:
                i = next_index
                if i >= total:
                    return
                next_index += 1
                body = reports.body(first + i)
                t0 = time.perf_counter()
                try:
                    status = await post(body)
                except failures as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if status == 204:
                    ok += 1
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "sent": next_index,
        "ok": ok,
        "errors": errors,
        "elapsed_s": round(elapsed, 3),
        "reports_per_s": round(ok / elapsed, 1) if elapsed else 0.0,
        "latency_ms_p50": round(statistics.median(latencies) * 1e3, 2) if latencies else None,
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1e3, 2)
        if latencies
        else None,
    }


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu_seconds(pid: int) -> dict[int, float]:
    """utime + stime of each thread of a process, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _children_cpu_seconds(pid: int) -> float:
    """utime + stime of a process's running children (the ingest worker), from /proc."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                total += _cpu_seconds(int(child))
            except OSError:  # ended meanwhile
                continue
    return total


def _wait_port(port_file: Path, proc: subprocess.Popen, timeout: float = 60) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit("server did not start in time")


async def run(args: argparse.Namespace) -> dict:
    drop = None
    with tempfile.TemporaryDirectory(prefix="archnest-bench-") as tmp:
        if args.database_url:
            from archnest.testing import create_pg_database

            url, drop = await create_pg_database(args.database_url, prefix="bench_")
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        port_file = Path(tmp) / "port"
        env = {**os.environ, "BENCH_AGENT_TOKEN": TOKEN}
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                "--data-dir",
                str(Path(tmp) / "data"),
                "--database-url",
                url,
                "--port-file",
                str(port_file),
                *(["--profile", str(Path(args.profile).resolve())] if args.profile else []),
                *(["--ingest-worker"] if args.ingest_worker else []),
            ],
            env=env,
            cwd=str(ROOT),
        )
        try:
            port = _wait_port(port_file, proc)
            reports = Reports(args.hosts, args.containers, args.churn)
            report_bytes = len(reports.body(0))
            # Warm-up: each host's first report (counted in the DB check, not in the rate).
            warm = await _send_all(port, reports, 0, args.senders, args.hosts, 30, args.client)
            if args.profile:
                os.kill(proc.pid, signal.SIGUSR1)  # the server's profile starts here
            server_cpu0, client_cpu0 = _cpu_seconds(proc.pid), time.process_time()
            worker_cpu0 = _children_cpu_seconds(proc.pid)
            threads0 = _thread_cpu_seconds(proc.pid)
            result = await _send_all(
                port, reports, args.hosts, args.senders, args.reports, args.duration, args.client
            )
            worker_cpu = _children_cpu_seconds(proc.pid) - worker_cpu0
            server_cpu = _cpu_seconds(proc.pid) - server_cpu0 + worker_cpu
            # The event loop's thread; the rest is the database driver's thread(s).
            threads = _thread_cpu_seconds(proc.pid)
            threads = {t: cpu - threads0.get(t, 0.0) for t, cpu in threads.items()}
            main_cpu = threads.get(proc.pid, 0.0)
            client_cpu = time.process_time() - client_cpu0
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        hosts, stored = await _stored_count(url)
        if drop is not None:
            await drop()
    accepted = warm["ok"] + result["ok"]
    per_report = server_cpu / result["ok"] if result["ok"] else 0.0
    result.update(
        # CPU seconds are robust to other load on the machine; the rate is not.
        server_cpu_ms_per_report=round(per_report * 1e3, 3),
        server_loop_cpu_ms_per_report=round(main_cpu / result["ok"] * 1e3, 3)
        if result["ok"]
        else None,
        # The other threads (the database writer's first), busy ones only.
        server_other_threads_cpu_ms_per_report=[
            round(cpu / result["ok"] * 1e3, 3)
            for t, cpu in sorted(threads.items(), key=lambda kv: -kv[1])
            if t != proc.pid and cpu > 0
        ]
        if result["ok"]
        else None,
        # --ingest-worker: the worker process's CPU (included in server_cpu above).
        server_worker_cpu_ms_per_report=round(worker_cpu / result["ok"] * 1e3, 3)
        if result["ok"] and args.ingest_worker
        else None,
        server_capacity_per_core=round(1 / per_report, 1) if per_report else None,
        client_cpu_ms_per_report=round(client_cpu / result["ok"] * 1e3, 3)
        if result["ok"]
        else None,
        load_average=os.getloadavg()[0],
        database="postgresql" if args.database_url else "sqlite",
        senders=args.senders,
        client=args.client,
        containers_per_report=args.containers,
        report_bytes=report_bytes,
        churn=args.churn,
        containers_changed=round(reports.changed / reports.sent_containers, 4)
        if reports.sent_containers
        else None,
        hosts=hosts,
        stored_reports=stored,
        accepted_reports=accepted,
        lost=accepted - stored,
        server_exit=proc.returncode,
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reports", type=int, default=5000, help="max reports to send (bound)")
    p.add_argument("--duration", type=float, default=30.0, help="max seconds of sending (bound)")
    p.add_argument("--senders", type=int, default=8, help="concurrent senders")
    p.add_argument(
        "--client",
        choices=("raw", "aiohttp"),
        default="raw",
        help="the load generator: a lean HTTP/1.1 keep-alive client (default) or aiohttp's",
    )
    p.add_argument(
        "--ingest-worker",
        action="store_true",
        help="the app with ARCHNEST_AGENT_INGEST_WORKER=1 (reports stored by a worker process)",
    )
    p.add_argument("--containers", type=int, default=50, help="containers per report")
    p.add_argument("--hosts", type=int, default=100, help="distinct reporting hosts")
    p.add_argument(
        "--churn",
        type=float,
        default=0.02,
        help="fraction of a host's containers changed since its previous report "
        "(0: only time and stats change; 1: every container, as on a first report)",
    )
    p.add_argument("--database-url", help="PostgreSQL server URL (postgresql+asyncpg://...)")
    p.add_argument("--testenv-pg", action="store_true", help="use tests/testenv's PostgreSQL")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="profile the server's event loop (cProfile, CPU time) into FILE (pstats)",
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--port-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args)
        return
    if args.testenv_pg and not args.database_url:
        args.database_url = _testenv_pg(args)
    if args.database_url and not args.database_url.startswith("postgresql+asyncpg://"):
        raise SystemExit(
            "--database-url must be a postgresql+asyncpg:// URL (SQLite is the default)"
        )
    if args.testenv_pg and args._testenv is not None:
        try:
            result = asyncio.run(run(args))
        finally:
            from tests.testenv import down

            down(args._testenv)
    else:
        result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    if result["lost"] or result["errors"] or result["server_exit"] not in (0, None):
        sys.exit(1)


def _testenv_pg(args: argparse.Namespace) -> str:
    """PostgreSQL from a running testenv (ARCHNEST_TESTENV_FILE) or a fresh one."""
    from tests.testenv import load, up

    args._testenv = None
    path = os.environ.get("ARCHNEST_TESTENV_FILE")
    env = load(path) if path else up()
    if not path:
        args._testenv = env
    return env.pg_url


if __name__ == "__main__":
    main()
