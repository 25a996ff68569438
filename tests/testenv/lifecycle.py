"""Bring the whole environment up (in parallel) and tear it down without leftovers."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import dockerd, postgres, sshd, tls
from .env import TestEnv
from .procs import TestEnvError, pid_alive, spawn, stop_group, stop_groups, tail, unmount_below

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise TestEnvError("the test environment must run as root (dockerd, sshd, useradd)")
    missing = [b for b in ("dockerd", "docker", "ssh-keygen") if not shutil.which(b)]
    if missing:
        raise TestEnvError(
            f"missing {', '.join(missing)}; run scripts/install-test-deps.sh as root"
        )


def _start_docker(
    base: Path, bundle: tls.TlsBundle, group: str, pids: dict[str, int]
) -> dockerd.DockerdInfo:
    info = dockerd.start(base, bundle, group)
    pids["dockerd"], pids["forwarder"] = info.pid, info.forwarder_pid
    dockerd.import_image(dockerd.docker_cli_env(info.socket, str(base / "docker-cli")))
    return info


def _start_ssh(
    base: Path, password: str, group: str, pids: dict[str, int]
) -> tuple[sshd.SshMaterial, list[sshd.SshEndpoint]]:
    ssh_dir = base / "ssh"
    material = sshd.make_material(ssh_dir, password, group)
    Path(ssh_dir / "user_ca.pub").write_text(material.user_ca_public_key + "\n")
    endpoints = []
    for name in ("target", "jump1", "jump2"):
        endpoint = sshd.start_sshd(ssh_dir, name, str(base / "docker.sock"), base / "logs")
        pids[f"sshd_{name}"] = endpoint.pid
        endpoints.append(endpoint)
    sshd.write_client_files(ssh_dir, material, endpoints)
    return material, endpoints


def _start_postgres(base: Path, pids: dict[str, int]) -> postgres.PostgresInfo:
    info = postgres.start(base)
    pids["postgres"] = info.pid
    return info


def up(
    base_dir: str | None = None, *, register_atexit: bool = True, quiet: bool = False
) -> TestEnv:
    """Start dockerd, three sshd and PostgreSQL in a fresh temp dir; return their coordinates.

    register_atexit: tear down when this process exits, and start a reaper that
    tears down if this process is killed without running atexit handlers. The
    CLI passes False so the environment outlives it.
    """
    started = time.monotonic()
    _check_prerequisites()
    # Short path under /tmp: unix socket paths (docker.sock, containerd's) must stay < 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="an-", dir=base_dir or "/tmp"))
    # Traversable (not listable) for the ssh login user and for postgres.
    base.chmod(0o711)
    (base / "logs").mkdir()
    (base / "docker-cli").mkdir()
    pids: dict[str, int] = {}
    try:
        bundle = tls.generate(base / "tls")
        password, group = sshd.ensure_user()
        # The three services are independent; starting them side by side keeps up() short.
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="testenv") as pool:
            f_docker = pool.submit(_start_docker, base, bundle, group, pids)
            f_ssh = pool.submit(_start_ssh, base, password, group, pids)
            f_pg = pool.submit(_start_postgres, base, pids)
            errors = [f.exception() for f in (f_docker, f_ssh, f_pg)]
            if failed := [e for e in errors if e is not None]:
                raise failed[0]
            d_info, (material, (target, jump1, jump2)), pg = (
                f_docker.result(),
                f_ssh.result(),
                f_pg.result(),
            )
    except BaseException as exc:
        logs = _collect_logs(base)
        _teardown(str(base), pids)
        if isinstance(exc, TestEnvError):
            raise TestEnvError(f"{exc}\n--- logs ---\n{logs}") from None
        raise

    env = TestEnv(
        tmpdir=str(base),
        docker_socket=d_info.socket,
        docker_unix_url=f"unix://{d_info.socket}",
        docker_tcp_url=f"tcp://127.0.0.1:{d_info.tcp_port}",
        docker_tls_url=f"https://127.0.0.1:{d_info.tls_port}",
        docker_tls_tcp_url=f"tcp://127.0.0.1:{d_info.tls_port}",
        docker_tcp_port=d_info.tcp_port,
        docker_tls_port=d_info.tls_port,
        image=dockerd.IMAGE,
        tls=bundle.client,
        tls_rogue=bundle.rogue,
        tls_expired=bundle.expired,
        ssh_target=target,
        ssh_jump1=jump1,
        ssh_jump2=jump2,
        ssh=material,
        ssh_config_path=str(base / "ssh" / "config"),
        ssh_known_hosts_path=str(base / "ssh" / "known_hosts"),
        ssh_wrapper_dir=str(base / "ssh" / "bin"),
        pg_url=postgres.url(pg.port),
        pg_dsn=f"postgresql://postgres@127.0.0.1:{pg.port}/{postgres.DATABASE}",
        pg_port=pg.port,
        pg_socket_dir=pg.socket_dir,
        pids=dict(pids),
    )
    env.startup_seconds = round(time.monotonic() - started, 2)
    state = base / "env.json"
    state.write_text(env.to_json())
    state.chmod(0o600)
    if register_atexit:
        atexit.register(down, env)
        env.pids["reaper"] = _start_reaper(state)
        state.write_text(env.to_json())
    if not quiet:
        print(f"testenv: up in {env.startup_seconds:.2f}s at {base}", file=sys.stderr)
    return env


def _start_reaper(state: Path) -> int:
    """A watchdog process that runs down() if this process dies without atexit (SIGKILL)."""
    proc = spawn(
        [
            sys.executable,
            "-m",
            "tests.testenv",
            "reap",
            "--parent",
            str(os.getpid()),
            "--json",
            str(state),
        ],
        state.parent / "logs" / "reaper.log",
        cwd=str(_REPO_ROOT),
    )
    return proc.pid


def reap(parent: int, state: Path) -> None:
    # The reaper is started in its own session, so a Ctrl-C in the terminal
    # does not kill it before the parent had a chance to clean up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while pid_alive(parent) and state.exists():
        time.sleep(1)
    if state.exists():
        data = json.loads(state.read_text())
        pids = {str(k): int(v) for k, v in data.get("pids", {}).items() if k != "reaper"}
        _teardown(str(data["tmpdir"]), pids)


def load(path: str | Path) -> TestEnv:
    return TestEnv.from_json(Path(path).read_text())


def down_file(path: str | Path) -> None:
    """down() from a state file; needs only tmpdir and pids, so older files still work."""
    data = json.loads(Path(path).read_text())
    _stop_all(str(data["tmpdir"]), {str(k): int(v) for k, v in data.get("pids", {}).items()})


_down_lock = threading.Lock()


def down(env: TestEnv) -> None:
    """Stop everything of env and delete its temp dir. Idempotent."""
    with _down_lock:
        pids = dict(env.pids)
        env.pids.clear()
        _stop_all(env.tmpdir, pids)


def _stop_all(tmpdir: str, pids: dict[str, int]) -> None:
    reaper = pids.pop("reaper", 0)
    # Stop the watchdog first: it would otherwise race us to the same work.
    if reaper and reaper != os.getpid() and _owned(reaper, tmpdir):
        stop_group(reaper, grace=1)
    if not pids and not os.path.exists(tmpdir):
        return  # already down (e.g. the fixture ran down() before atexit did)
    _teardown(tmpdir, pids)


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _owned(pid: int, tmpdir: str) -> bool:
    """True only for processes of this environment, so a recycled pid is never signalled."""
    if tmpdir in _cmdline(pid):
        return True
    with contextlib.suppress(OSError):  # our own child, already a zombie
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return stat[0] == "Z" and int(stat[1]) == os.getpid()
    return False


def _processes() -> dict[int, int]:
    """pid -> ppid for every process on the machine."""
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
                table[int(entry.name)] = int(stat[1])
    return table


def _descendants(roots: set[int]) -> set[int]:
    table = _processes()
    found, frontier = set(), set(roots)
    while frontier:
        children = {pid for pid, ppid in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def _teardown(tmpdir: str, pids: dict[str, int]) -> None:
    if not tmpdir or not tmpdir.startswith("/"):
        return
    owned = {name: pid for name, pid in pids.items() if pid and _owned(pid, tmpdir)}
    # sshd session processes and postgres backends start their own sessions or
    # rename themselves; remember the whole trees now and kill leftovers last.
    tree = _descendants(set(owned.values()))
    if "dockerd" in owned and os.path.exists(Path(tmpdir) / "docker.sock"):
        # Removing containers first (SIGKILL via rm -f) is faster than letting
        # dockerd stop them, and leaves no container process behind.
        cli_env = dockerd.docker_cli_env(
            str(Path(tmpdir) / "docker.sock"), str(Path(tmpdir) / "docker-cli")
        )
        with contextlib.suppress(TestEnvError, OSError):
            dockerd.remove_all_containers(cli_env)
    # postgres' "fast shutdown" is SIGINT; everything else stops on SIGTERM.
    stop_groups(
        {
            pid: signal.SIGINT if name == "postgres" else signal.SIGTERM
            for name, pid in owned.items()
        },
        grace=15,
    )
    stragglers = {pid for pid in tree if pid_alive(pid)}
    # Anything else still mentioning the temp dir (e.g. an orphaned containerd
    # whose dockerd crashed) is ours too: the directory name is unique.
    stragglers |= {
        pid for pid in _processes() if pid != os.getpid() and tmpdir + "/" in _cmdline(pid)
    }
    for pid in stragglers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    unmount_below(Path(tmpdir))
    shutil.rmtree(tmpdir, ignore_errors=True)
    if os.path.exists(tmpdir):
        # Mounts can take a moment to go after a lazy unmount of a busy tree.
        time.sleep(0.5)
        unmount_below(Path(tmpdir))
        shutil.rmtree(tmpdir, ignore_errors=True)


def _collect_logs(base: Path) -> str:
    logs = base / "logs"
    if not logs.is_dir():
        return "(no logs)"
    parts = [f"== {p.name} ==\n{tail(p, 30)}" for p in sorted(logs.iterdir()) if p.stat().st_size]
    return "\n".join(parts) or "(logs empty)"
