"""A dockerd or a PostgreSQL of a test's own, which the test may stop and start again.

Fault tests take a service down in the middle of traffic; doing that to the session's
shared daemons would break every other test. These are started in their own temp dir
with the same helpers as the session's environment, and restart on the same sockets,
ports and data (what an operator's ``systemctl restart`` does).
"""

from __future__ import annotations

import os
import shlex
import signal
import tempfile
from pathlib import Path
from typing import Any

from . import dockerd, postgres, tls
from .lifecycle import _teardown
from .procs import TestEnvError, pid_alive, run, spawn, stop_group, wait_until


class StandaloneDockerd:
    """An isolated dockerd: unix socket, its own mutual-TLS TCP listener, and the plain
    TCP forwarder (which stays up while dockerd is down, as a proxy in front would)."""

    def __init__(self, base_dir: str | None = None) -> None:
        # Short path under /tmp: containerd's socket paths must stay < 108 bytes.
        self.base = Path(tempfile.mkdtemp(prefix="an-d-", dir=base_dir or "/tmp"))
        self.base.chmod(0o711)
        (self.base / "logs").mkdir()
        (self.base / "docker-cli").mkdir()
        self.pids: dict[str, int] = {}
        try:
            self.tls = tls.generate(self.base / "tls")
            info = dockerd.start(self.base, self.tls, "root")
            self.pids.update(dockerd=info.pid, forwarder=info.forwarder_pid)
            self.info = info
            dockerd.import_image(self.cli_env())
        except BaseException:
            self.close()
            raise

    @property
    def socket(self) -> str:
        return self.info.socket

    @property
    def unix_url(self) -> str:
        return f"unix://{self.info.socket}"

    @property
    def tcp_url(self) -> str:
        """Plain TCP through the forwarder (a separate process on its own port)."""
        return f"tcp://127.0.0.1:{self.info.tcp_port}"

    @property
    def tls_url(self) -> str:
        """dockerd's own TCP listener (mutual TLS: ``self.tls.client``)."""
        return f"https://127.0.0.1:{self.info.tls_port}"

    @property
    def running(self) -> bool:
        return pid_alive(self.pids.get("dockerd", 0))

    def cli_env(self) -> dict[str, str]:
        return dockerd.docker_cli_env(self.info.socket, str(self.base / "docker-cli"))

    def docker(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        proc = run(
            [dockerd.docker_binary(), *args], env=self.cli_env(), check=check, timeout=timeout
        )
        return proc.stdout.decode(errors="replace").strip()

    def stop(self, grace: float = 20) -> None:
        """SIGTERM dockerd as an init system would; containers stop with it."""
        pid = self.pids.pop("dockerd", 0)
        if pid:
            stop_group(pid, grace=grace)

    def start(self) -> None:
        """Start dockerd again on the same data root, socket and TLS port."""
        if self.running:
            raise TestEnvError("dockerd is already running")
        log = self.base / "logs" / "dockerd.log"
        pid, _ = dockerd._start_daemon(
            self.base, self.tls, "root", log, tls_port=self.info.tls_port
        )
        self.pids["dockerd"] = pid
        self.info.pid = pid

    def close(self) -> None:
        """Remove every container, stop both processes, delete the temp dir."""
        pids, self.pids = dict(self.pids), {}
        _teardown(str(self.base), pids)


class StandalonePostgres:
    """A PostgreSQL cluster on a loopback port; ``stop()``/``start()`` keep the data
    directory and the port."""

    def __init__(self, base_dir: str | None = None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="an-p-", dir=base_dir or "/tmp"))
        self.base.chmod(0o711)
        (self.base / "logs").mkdir()
        self.pids: dict[str, int] = {}
        try:
            info = postgres.start(self.base)
        except BaseException:
            self.close()
            raise
        self.pids["postgres"] = info.pid
        self.port = info.port
        self.data = self.base / "pg" / "data"
        # The postmaster records its own command line; a restart runs exactly that.
        self._argv = shlex.split((self.data / "postmaster.opts").read_text())

    @property
    def url(self) -> str:
        """The postgresql+asyncpg URL of the test database (``postgres.DATABASE``)."""
        return postgres.url(self.port)

    @property
    def running(self) -> bool:
        return pid_alive(self.pids.get("postgres", 0))

    def stop(self, grace: float = 20) -> None:
        """Fast shutdown (SIGINT): sessions are ended, as on ``systemctl restart``."""
        pid = self.pids.pop("postgres", 0)
        if pid:
            stop_group(pid, sig=signal.SIGINT, grace=grace)

    def start(self, timeout: float = 30) -> None:
        if self.running:
            raise TestEnvError("postgres is already running")
        user = postgres._server_user()
        kwargs: dict[str, Any] = {
            "user": user.pw_uid,
            "group": user.pw_gid,
            "extra_groups": [],
            "cwd": str(self.base / "pg"),
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"},
        }
        log = self.base / "logs" / "postgres.log"
        proc = spawn(self._argv, log, **kwargs)
        self.pids["postgres"] = proc.pid
        wait_until(
            "postgres",
            lambda: postgres._accepts_queries(self.port),
            timeout=timeout,
            proc=proc,
            log_path=log,
        )

    def close(self) -> None:
        pids, self.pids = dict(self.pids), {}
        _teardown(str(self.base), pids)
