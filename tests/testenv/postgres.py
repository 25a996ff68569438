"""A throwaway PostgreSQL cluster on a loopback port, owned by the test run."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import re
import shutil
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .procs import TestEnvError, free_port, port_open, run, spawn, stop_group, wait_until

DATABASE = "archnest_test"
_T = TypeVar("_T")
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class PostgresInfo:
    pid: int
    port: int
    socket_dir: str


def _bin_dir() -> Path:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    # Debian keeps the server binaries off PATH, one directory per major version.
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise TestEnvError("PostgreSQL server binaries (initdb) not found; install postgresql")
    return Path(found[-1]).parent


def _server_user() -> pwd.struct_passwd:
    # The postmaster refuses to run as root; use the distribution's account.
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/bin/false",
                "postgres",
            ]
        )
        return pwd.getpwnam("postgres")


def run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running event loop.

    A private thread gets its own loop, so async tests can call the sync
    helpers without "asyncio.run() cannot be called from a running event loop".
    """
    result: list[_T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="testenv-pg")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _execute(port: int, *statements: str, database: str = "postgres") -> None:
    import asyncpg  # deferred: only needed once postgres is actually used

    conn = await asyncpg.connect(
        host="127.0.0.1", port=port, user="postgres", database=database, timeout=10
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _accepts_queries(port: int) -> bool:
    if not port_open(port):
        return False
    try:
        run_async(_execute(port, "SELECT 1"))
    except Exception:  # "starting up" and friends: just poll again
        return False
    return True


def start(base: Path) -> PostgresInfo:
    bindir = _bin_dir()
    user = _server_user()
    pg_dir = base / "pg"
    data, sockets = pg_dir / "data", pg_dir / "run"
    for path in (pg_dir, sockets):
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, user.pw_uid, user.pw_gid)
    as_postgres: dict[str, Any] = {
        "user": user.pw_uid,
        "group": user.pw_gid,
        "extra_groups": [],
        "cwd": str(pg_dir),
        "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"},
    }
    log = base / "logs" / "postgres.log"
    init = spawn(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        base / "logs" / "initdb.log",
        **as_postgres,
    )
    if init.wait(timeout=120) != 0:
        raise TestEnvError(f"initdb failed, see {base / 'logs' / 'initdb.log'}")

    last_error: TestEnvError | None = None
    for _attempt in range(3):
        port = free_port()
        # Durability is pointless for a throwaway cluster; speed matters.
        proc = spawn(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=32MB",
            ],
            log,
            **as_postgres,
        )
        try:
            wait_until(
                "postgres", lambda p=port: _accepts_queries(p), timeout=30, proc=proc, log_path=log
            )
        except TestEnvError as exc:
            stop_group(proc.pid, grace=5)
            last_error = exc
            if "already in use" not in log.read_text(errors="replace"):
                break
            continue
        run_async(_execute(port, f"CREATE DATABASE {DATABASE}"))
        return PostgresInfo(proc.pid, port, str(sockets))
    assert last_error is not None
    raise last_error


def url(port: int, database: str = DATABASE) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"


def create_database(port: int, name: str) -> str:
    """A fresh, empty database; returns its SQLAlchemy asyncpg URL."""
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    # template0: nothing copied, so creating one is a few milliseconds.
    run_async(_execute(port, f"CREATE DATABASE {name} TEMPLATE template0"))
    return url(port, name)


def drop_database(port: int, name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    run_async(_execute(port, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
