"""The container image: built by scripts/build-image with no network inside the build,
run on the isolated dockerd, healthy, non-root, serving the login page.

The base is a bookworm root made with debootstrap (tests/image/local_base.py), since
no registry is reachable here; the Dockerfile's default base is the same Debian
release with the same python3 minor version. The database follows ARCHNEST_TEST_DB:
SQLite in the /data volume, or the environment's PostgreSQL through its unix socket
mounted into the container (the container has no network of its own besides loopback:
the test dockerd runs with --bridge=none).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.image.local_base import import_base
from tests.testenv import TestEnv
from tests.testenv.postgres import run_async

# The subject is the container image, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

ROOT = Path(__file__).resolve().parents[2]
UID = "10001"
# The image's own python3 fetches from inside the container's network namespace.
FETCH = (
    "import sys, urllib.request\n"
    "r = urllib.request.urlopen('http://127.0.0.1:8080' + sys.argv[1], timeout=10)\n"
    "sys.stdout.write(str(r.status) + '\\n' + r.read().decode())\n"
)


@pytest.fixture(scope="module")
def app_image(testenv: TestEnv) -> Iterator[str]:
    """scripts/build-image on the local base; the tag, removed again afterwards."""
    started = time.monotonic()
    base, import_seconds = import_base(testenv)
    tag = f"archnest-containers:test-{secrets.token_hex(4)}"
    env = {**testenv.docker_cli_env(), "BASE": base, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "scripts/build-image", tag],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"build-image failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    print(
        f"image: base import {import_seconds:.1f}s, "
        f"build {time.monotonic() - started - import_seconds:.1f}s"
    )
    try:
        yield tag
    finally:
        testenv.remove_all_containers()
        testenv.docker("rmi", "-f", tag, check=False)
        testenv.docker("image", "prune", "-f", check=False)


def _state(env: TestEnv, name: str) -> dict:
    return json.loads(env.docker("inspect", "-f", "{{json .State}}", name))


def _wait_healthy(env: TestEnv, name: str, timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = _state(env, name)
        if state.get("Health", {}).get("Status") == "healthy":
            return time.monotonic() - started
        if state["Status"] in ("exited", "dead"):
            break
        time.sleep(0.5)
    logs = subprocess.run(
        ["docker", "logs", "--tail", "40", name],
        env=env.docker_cli_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    logs = logs.stdout + logs.stderr
    pytest.fail(f"container {name} never became healthy: {_state(env, name)}\n{logs}")


def _fetch(env: TestEnv, name: str, path: str) -> tuple[int, str]:
    out = env.docker("exec", name, "python3", "-c", FETCH, path)
    status, _, body = out.partition("\n")
    return int(status), body


def _database_args(env: TestEnv) -> tuple[list[str], str | None]:
    """docker run arguments for ARCHNEST_TEST_DB; the PostgreSQL database name or None."""
    if os.environ.get("ARCHNEST_TEST_DB", "sqlite") != "postgres":
        return [], None
    name = f"t_{secrets.token_hex(6)}"
    env.create_database(name)
    # asyncpg connects through the socket directory given as host= (the port names
    # the socket file, .s.PGSQL.<port>).
    url = f"postgresql+asyncpg://postgres@/{name}?host=/run/postgresql&port={env.pg_port}"
    args = ["-v", f"{env.pg_socket_dir}:/run/postgresql", "-e", f"ARCHNEST_DATABASE_URL={url}"]
    return args, name


async def _pg_tables(env: TestEnv, database: str) -> set[str]:
    conn = await asyncpg.connect(
        host="127.0.0.1", port=env.pg_port, user="postgres", database=database
    )
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


def test_the_image_runs_healthy_as_non_root_and_serves_the_login_page(
    testenv: TestEnv, app_image: str
) -> None:
    config = json.loads(testenv.docker("image", "inspect", "-f", "{{json .Config}}", app_image))
    assert config["User"] == f"{UID}:{UID}"
    assert "8080/tcp" in config["ExposedPorts"]
    assert "/data" in config["Volumes"]
    assert "ARCHNEST_DATA_DIR=/data" in config["Env"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])

    name = f"archnest-{secrets.token_hex(4)}"
    volume = f"{name}-data"
    db_args, pg_database = _database_args(testenv)
    try:
        testenv.docker(
            "run", "-d", "--name", name,
            "-v", f"{volume}:/data",
            # The image checks every 30 s; a test cannot wait that long for the first.
            "--health-interval=1s", "--health-start-period=120s",
            *db_args,
            app_image,
        )  # fmt: skip
        seconds = _wait_healthy(testenv, name)
        print(f"image: healthy after {seconds:.1f}s")

        assert testenv.docker("exec", name, "id", "-u") == UID
        # PID 1 (the app itself) too, not only what exec starts.
        status = testenv.docker("exec", name, "cat", "/proc/1/status")
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [UID] * 4

        code, body = _fetch(testenv, name, "/login")
        assert code == 200
        assert "Sign in" in body and "<form" in body
        code, body = _fetch(testenv, name, "/healthz")
        assert (code, json.loads(body)) == (200, {"status": "ok"})

        # The data volume: private to the app's user; the secret key generated in it.
        listing = testenv.docker(
            "exec", name, "stat", "-c", "%n %a %u", "/data", "/data/secret.key"
        )
        assert listing.splitlines() == [f"/data 700 {UID}", f"/data/secret.key 600 {UID}"]
        has_sqlite = testenv.docker("exec", name, "ls", "/data").split().count("archnest.db")
        if pg_database is None:
            assert has_sqlite == 1
            mode = testenv.docker("exec", name, "stat", "-c", "%a", "/data/archnest.db")
            assert mode == "600"
        else:
            assert has_sqlite == 0
            tables = run_async(_pg_tables(testenv, pg_database))
            assert {"alembic_version", "users"} <= tables, tables

        # The first run's admin password goes to the log, once (docs/install.md).
        logs = subprocess.run(
            ["docker", "logs", name],
            env=testenv.docker_cli_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stderr
        assert "created user 'admin' with one-time password" in logs

        # The app is PID 1 and shuts down on SIGTERM itself: exit 0, not a SIGKILL (137)
        # after the grace period.
        testenv.docker("stop", "-t", "20", name, timeout=60)
        assert _state(testenv, name)["ExitCode"] == 0
    finally:
        testenv.docker("rm", "-f", "-v", name, check=False)
        testenv.docker("volume", "rm", "-f", volume, check=False)
        if pg_database:
            testenv.drop_database(pg_database)
