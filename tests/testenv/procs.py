"""Process plumbing shared by the daemons of the test environment."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class TestEnvError(RuntimeError):
    """A part of the test environment is missing or failed to start."""

    __test__ = False  # not a pytest test class despite the name


def free_port() -> int:
    """A loopback port that was free a moment ago.

    The kernel hands out a fresh ephemeral port, so concurrent runs on one
    machine do not pick the same one; the small race until the daemon binds
    it is handled by the callers retrying with a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a short command; on failure raise with its output, which is the useful part."""
    try:
        proc = subprocess.run(
            list(argv), input=input, capture_output=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TestEnvError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise TestEnvError(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n"
            f"stdout: {proc.stdout.decode(errors='replace')[-2000:]}\n"
            f"stderr: {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc


def spawn(argv: Sequence[str], log_path: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session, output to a log file kept in the temp dir.

    A new session gives every daemon its own process group, so teardown can
    kill the daemon together with everything it forked (containerd, shims,
    postgres backends) without touching anything else on the machine.
    """
    log = open(log_path, "ab")  # the child process owns the descriptor from here
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
    finally:
        log.close()


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll until ready() is true; fail fast with the daemon's log if it died."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        with contextlib.suppress(OSError):
            if ready():
                return
        if proc is not None and proc.poll() is not None:
            log = tail(log_path) if log_path else ""
            raise TestEnvError(f"{what} exited with {proc.returncode} before it was ready\n{log}")
        if time.monotonic() > deadline:
            log = tail(log_path) if log_path else ""
            raise TestEnvError(f"{what} not ready after {timeout}s\n{log}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; treat it as dead so teardown does not wait on it.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_groups(signals: dict[int, int], *, grace: float = 10.0) -> None:
    """Signal several daemons' process groups at once, wait, then SIGKILL what is left.

    signals maps a group leader's pid to the signal asking it to stop. All are
    signalled before any is waited for, so teardown takes as long as the
    slowest daemon, without threads (it also runs from atexit handlers, when
    new threads can no longer be started). Only groups created by spawn()
    (pgid == pid) are passed here, so nothing else on the machine is touched.
    """
    for pid, sig in signals.items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in signals):
        time.sleep(0.05)
    for pid in signals:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        # Reap it if it is our child, so no zombie outlives the run.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def stop_group(pid: int, *, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    stop_groups({pid: sig}, grace=grace)


def unmount_below(path: Path) -> None:
    """Lazily unmount whatever dockerd left mounted under path (deepest first)."""
    prefix = str(path).rstrip("/") + "/"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        # /proc/mounts escapes spaces as \040; our paths never contain them.
        mnt = fields[1]
        if mnt == str(path) or mnt.startswith(prefix):
            points.append(mnt)
    for mnt in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True, check=False)
