"""Helpers for tests that install the real agent (locally under a prefix, or over SSH
into the test sshd's host): where it writes, and stopping the detached loop it starts."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

PROG = "archnest-docker-agent"


def installed(root: Path) -> dict[str, Path]:
    """The files ``--install`` writes under ``root`` (and the detached loop's pid file)."""
    return {
        "bin": root / "usr/local/bin" / f"{PROG}.sh",
        "env": root / "etc/archnest/docker-agent.env",
        "unit": root / "etc/systemd/system" / f"{PROG}.service",
        "pid": root / "run" / f"{PROG}.pid",
    }


def stop_agent(root: Path) -> None:
    """Kill a detached agent an install under ``root`` started (never leave one running)."""
    for pid_file in (root / "run" / f"{PROG}.pid", root / "var/run" / f"{PROG}.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def env_values(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


@contextlib.contextmanager
def remote_root(username: str) -> Iterator[Path]:
    """A directory the test sshd's user may write (pytest's own tmp is root-only); the
    agent an install started there is stopped and the directory removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="archnest-ssh-install-", dir="/tmp"))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(username)
            os.chown(path, user.pw_uid, user.pw_gid)
        else:
            path.chmod(0o777)
        yield path
    finally:
        stop_agent(path)
        shutil.rmtree(path, ignore_errors=True)


def sudo_shim(directory: Path) -> Path:
    """A ``sudo`` for a machine without one, where the tests already run as root: it
    runs its arguments (``VAR=value ... command``) as ``env`` would."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "sudo"
    shim.write_text('#!/bin/sh\nexec env "$@"\n')
    shim.chmod(0o755)
    return directory
