"""`archnest serve` in its own process, as deployed, for tests and benches that need the
real process: its signals, its file descriptors, its CPU read from /proc."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import aiohttp

CLI = [sys.executable, "-m", "archnest"]
USER, PASSWORD = "ops", "ops-password-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_installed(
    archnest: str | Path, env: Mapping[str, str], cwd: Path, log: Path, timeout: float = 60
) -> Iterator[str]:
    """An installed ``archnest`` executable serving on a free loopback port (its output in
    ``log``); yields the base URL, then terminates it (SIGKILL after 10 s)."""
    from .procs import port_open, wait_until

    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(archnest), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            "archnest serve", lambda: port_open(port), timeout=timeout, proc=proc, log_path=log
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServedApp:
    """Migrate, create an admin with an API token, then serve on a free loopback port.

    ``async with ServedApp(env={...}) as app:`` gives ``app.base`` (URL), ``app.headers``
    (the admin's bearer token) and ``app.proc``; leaving ends the process (SIGTERM, then
    SIGKILL after ``stop_timeout``) if it still runs.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        data_dir: str | None = None,
        log_path: Path | None = None,
        log_level: str = "WARNING",
        stop_timeout: float = 30,
        prepare: bool = True,
    ) -> None:
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="archnest-served-")
        self.env = {
            **os.environ,
            "ARCHNEST_DATA_DIR": self.data_dir,
            "ARCHNEST_SECRET_KEY": "served-app-secret-key",
            "ARCHNEST_ADMIN_PASSWORD": "served-admin-password",
            "ARCHNEST_ADD_LOCAL_DOCKER": "0",
            **(env or {}),
        }
        self.log_path, self.log_level, self.stop_timeout = log_path, log_level, stop_timeout
        # False: another replica on the same database migrated it and made the admin.
        self.prepare = prepare
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.headers: dict[str, str] = {}

    def _cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*CLI, *args], env=self.env, input=stdin, text=True, check=True, capture_output=True
        )
        return done.stdout.strip()

    async def __aenter__(self) -> ServedApp:
        if self.prepare:
            self._cli("db", "upgrade")
            self._cli("user", "add", USER, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
            self.headers = {"Authorization": "Bearer " + self._cli("token", "create", USER)}
        port = free_port()
        out = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "--port", str(port), "--log-level", self.log_level],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"archnest serve exited with {self.proc.returncode}")
                try:
                    async with http.get(self.base + "/healthz") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        await self.__aexit__()
        raise RuntimeError("archnest serve did not come up")

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.to_thread(self.proc.wait, self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
