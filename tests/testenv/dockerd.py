"""The isolated dockerd: unix socket, plain TCP (via forwarder.py) and mutual TLS."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .procs import TestEnvError, free_port, run, spawn, stop_group, tail, wait_until
from .tls import TlsBundle

IMAGE = "archnest-test/busybox:1"

# Variables that would redirect the docker CLI away from our daemon or make it
# expect TLS; the CLI gets DOCKER_HOST and its own empty config dir instead.
_DOCKER_CLIENT_VARS = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


@dataclass
class DockerdInfo:
    pid: int
    forwarder_pid: int
    socket: str
    tcp_port: int
    tls_port: int
    log: str


def docker_cli_env(socket_path: str, config_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DOCKER_CLIENT_VARS}
    env["DOCKER_HOST"] = f"unix://{socket_path}"
    # A private config dir: the machine's ~/.docker (contexts, credential
    # helpers, plugins) must not influence or receive anything from the tests.
    env["DOCKER_CONFIG"] = config_dir
    return env


def docker_binary() -> str:
    path = shutil.which("docker")
    if not path:
        raise TestEnvError("the docker CLI is not installed (scripts/install-test-deps.sh)")
    return path


def ping_unix(socket_path: str, timeout: float = 2.0) -> bool:
    """GET /_ping over the unix socket with the stdlib only (the CLI is slower to start)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    status_line = data.split(b"\r\n", 1)[0].split()
    return len(status_line) >= 2 and status_line[1] == b"200"


def _start_daemon(
    base: Path, tls: TlsBundle, group: str, log: Path, tls_port: int | None = None
) -> tuple[int, int]:
    """Start dockerd on base's sockets; ``tls_port`` reuses a port (a restart), else a
    free one is chosen."""
    dockerd = shutil.which("dockerd")
    if not dockerd:
        raise TestEnvError("dockerd is not installed (run scripts/install-test-deps.sh)")
    sock = base / "docker.sock"
    # An empty config file so the machine's /etc/docker/daemon.json (hosts,
    # registry mirrors, storage options) cannot leak into the isolated daemon.
    (base / "daemon.json").write_text("{}\n")
    # Unique containerd namespaces: if dockerd finds a system containerd it
    # attaches to it instead of starting its own, and then several test daemons
    # must not see each other's containers.
    # containerd accepts only [A-Za-z0-9] runs joined by single . _ or - (mkdtemp
    # names may end in "_" or contain "__").
    namespace = "archnest-" + "".join(c for c in base.name if c.isalnum())
    last_error: TestEnvError | None = None
    fixed_port = tls_port
    for _attempt in range(3):
        tls_port = fixed_port or free_port()
        argv = [
            dockerd,
            "--config-file",
            str(base / "daemon.json"),
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--data-root",
            str(base / "root"),
            "--exec-root",
            str(base / "exec"),
            "--pidfile",
            str(base / "docker.pid"),
            "--containerd-namespace",
            namespace,
            "--containerd-plugins-namespace",
            f"{namespace}-plugins",
            "--group",
            group,
            # Containers in tests often run `sleep` as PID 1, which ignores
            # SIGTERM; don't let dockerd wait the default 15 s per container.
            "--shutdown-timeout",
            "1",
            "-H",
            f"unix://{sock}",
            "-H",
            f"tcp://127.0.0.1:{tls_port}",
            "--tlsverify",
            "--tlscacert",
            tls.server.ca_path,
            "--tlscert",
            tls.server.cert_path,
            "--tlskey",
            tls.server.key_path,
        ]
        proc = spawn(argv, log)
        try:
            wait_until(
                "dockerd", lambda s=str(sock): ping_unix(s), timeout=30, proc=proc, log_path=log
            )
            return proc.pid, tls_port
        except TestEnvError as exc:
            stop_group(proc.pid, grace=5)
            last_error = exc
            if "address already in use" not in tail(log, 20):
                break
    assert last_error is not None
    raise last_error


def _start_forwarder(base: Path, log: Path) -> tuple[int, int]:
    port_file = base / "forwarder.port"
    script = Path(__file__).with_name("forwarder.py")
    proc = spawn([sys.executable, str(script), str(base / "docker.sock"), str(port_file)], log)
    wait_until("tcp forwarder", port_file.exists, timeout=10, proc=proc, log_path=log)
    return proc.pid, int(port_file.read_text())


def _busybox_tar() -> bytes:
    """A root filesystem with busybox and every applet linked, as a tar stream."""
    busybox = "/bin/busybox" if os.path.exists("/bin/busybox") else shutil.which("busybox")
    if not busybox:
        raise TestEnvError("busybox is not installed (busybox-static)")
    applets = run([busybox, "--list"]).stdout.decode().split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "etc", "dev", "proc", "sys", "root", "var", "home"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", Path(busybox).read_bytes(), 0o755)
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        # Enough of /etc for `id`, `whoami` and `--user nobody` to work.
        add_file(
            "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
        )
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def import_image(env: dict[str, str]) -> None:
    run(
        [docker_binary(), "import", "-c", 'CMD ["/bin/sh"]', "-", IMAGE],
        input=_busybox_tar(),
        env=env,
        timeout=60,
    )


def start(base: Path, tls: TlsBundle, group: str) -> DockerdInfo:
    log = base / "logs" / "dockerd.log"
    pid, tls_port = _start_daemon(base, tls, group, log)
    try:
        fwd_pid, tcp_port = _start_forwarder(base, base / "logs" / "forwarder.log")
    except TestEnvError:
        stop_group(pid)
        raise
    info = DockerdInfo(pid, fwd_pid, str(base / "docker.sock"), tcp_port, tls_port, str(log))
    (base / "dockerd.json").write_text(json.dumps(info.__dict__))
    return info


def remove_all_containers(env: dict[str, str]) -> None:
    ids = run([docker_binary(), "ps", "-aq"], env=env, timeout=30).stdout.decode().split()
    if ids:
        # -f kills first: fast even for PID-1 processes that ignore SIGTERM.
        run([docker_binary(), "rm", "-f", "-v", *ids], env=env, timeout=60, check=False)
