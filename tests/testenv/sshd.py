"""Loopback sshd instances (target, jump1, jump2), keys, certificates and the test user."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import grp
import hashlib
import os
import pwd
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .procs import TestEnvError, free_port, run, spawn, stop_group, tail, wait_until

SSHD = "/usr/sbin/sshd"
SSH_CLIENT = shutil.which("ssh") or "/usr/bin/ssh"
SSH_USER = "archnest-test"
# The test user's password is generated once per machine and kept root-only,
# so concurrent runs agree on it instead of overwriting each other's.
_STATE_DIR = Path("/var/lib/archnest-testenv")
_LOCK = Path("/run/lock/archnest-testenv.lock")


@dataclass
class SshEndpoint:
    name: str
    host: str
    port: int
    host_key: str  # "ssh-ed25519 AAAA..." (no comment), what a client pins
    host_key_fingerprint: str  # "SHA256:..." as printed by ssh-keygen -l
    pid: int


@dataclass
class SshMaterial:
    username: str
    password: str
    private_key: str  # OpenSSH format, unencrypted
    private_key_path: str
    public_key: str
    encrypted_private_key: str  # same key, protected by passphrase
    encrypted_private_key_path: str
    passphrase: str
    cert_private_key: str  # a key that is NOT in authorized_keys: only its cert gets it in
    cert_private_key_path: str
    certificate: str  # contents of the -cert.pub file
    certificate_path: str
    user_ca_public_key: str
    docker_socket_group: str


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(_LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def ensure_user() -> tuple[str, str]:
    """Create the local login user if needed; return (password, docker socket group)."""
    with _machine_lock():
        try:
            pwd.getpwnam(SSH_USER)
        except KeyError:
            run(
                [
                    "useradd",
                    "--system",
                    "--create-home",
                    "--home-dir",
                    f"/home/{SSH_USER}",
                    "--shell",
                    "/bin/bash",
                    "--user-group",
                    SSH_USER,
                ]
            )
        _STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        pw_file = _STATE_DIR / "ssh-password"
        if not pw_file.exists():
            pw_file.write_text(secrets.token_urlsafe(18))
            pw_file.chmod(0o600)
        password = pw_file.read_text().strip()
        # Always (re)set it: cheap, and repairs a user created by someone else.
        run(["chpasswd"], input=f"{SSH_USER}:{password}\n".encode())
        group = SSH_USER
        if _group_exists("docker"):
            members = grp.getgrnam("docker").gr_mem
            if SSH_USER not in members:
                run(["usermod", "-aG", "docker", SSH_USER])
            group = "docker"
    return password, group


def fingerprint(public_key_line: str) -> str:
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _keygen(path: Path, comment: str) -> str:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return Path(f"{path}.pub").read_text().strip()


def make_material(ssh_dir: Path, password: str, group: str) -> SshMaterial:
    ssh_dir.mkdir(parents=True, exist_ok=True)
    user_key = ssh_dir / "user_ed25519"
    public_key = _keygen(user_key, "archnest-test-key")

    passphrase = secrets.token_urlsafe(12)
    enc_key = ssh_dir / "user_ed25519_encrypted"
    enc_key.write_bytes(user_key.read_bytes())
    enc_key.chmod(0o600)
    run(["ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", str(enc_key)])

    ca_key = ssh_dir / "user_ca"
    ca_pub = _keygen(ca_key, "archnest-test-user-ca")
    cert_key = ssh_dir / "cert_ed25519"
    _keygen(cert_key, "archnest-test-cert-key")
    run(
        [
            "ssh-keygen",
            "-q",
            "-s",
            str(ca_key),
            "-I",
            "archnest-test-cert",
            "-n",
            f"{SSH_USER},root",
            "-V",
            "-1d:+30d",
            f"{cert_key}.pub",
        ]
    )
    cert_path = ssh_dir / "cert_ed25519-cert.pub"

    # The same file serves every user (AuthorizedKeysFile is an absolute path);
    # sshd reads it as the logging-in user, hence world-readable.
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(public_key + "\n")
    authorized.chmod(0o644)
    return SshMaterial(
        username=SSH_USER,
        password=password,
        private_key=user_key.read_text(),
        private_key_path=str(user_key),
        public_key=public_key,
        encrypted_private_key=enc_key.read_text(),
        encrypted_private_key_path=str(enc_key),
        passphrase=passphrase,
        cert_private_key=cert_key.read_text(),
        cert_private_key_path=str(cert_key),
        certificate=cert_path.read_text().strip(),
        certificate_path=str(cert_path),
        user_ca_public_key=ca_pub,
        docker_socket_group=group,
    )


def _config(
    ssh_dir: Path, name: str, port: int, docker_socket: str, max_sessions: int = 100
) -> str:
    return f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {ssh_dir}/host_{name}
PidFile {ssh_dir}/{name}.pid
AuthorizedKeysFile {ssh_dir}/authorized_keys
TrustedUserCAKeys {ssh_dir}/user_ca.pub
# Keys live under /tmp, whose modes StrictModes would reject.
StrictModes no
# Without PAM, sshd checks passwords against /etc/shadow itself.
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
# Jump chains need direct-tcpip; only ever towards loopback.
AllowTcpForwarding yes
PermitOpen 127.0.0.1:* localhost:*
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
PrintLastLog no
UseDNS no
# The SSH source multiplexes many channels on one pooled connection.
MaxSessions {max_sessions}
MaxStartups 100:30:200
MaxAuthTries 20
LoginGraceTime 30
# A plain `docker ps` on this "remote" host must reach the isolated daemon.
SetEnv DOCKER_HOST=unix://{docker_socket}
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""


def _banner(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        return sock.recv(64).startswith(b"SSH-2.0-")


def start_sshd(
    ssh_dir: Path, name: str, docker_socket: str, log_dir: Path, max_sessions: int = 100
) -> SshEndpoint:
    """One sshd on a free loopback port; ``max_sessions`` lower than the default makes a
    server that refuses channels early (tests of the pool's channel accounting)."""
    if not os.access(SSHD, os.X_OK):
        raise TestEnvError(f"{SSHD} is missing (install openssh-server)")
    # Privilege separation directory; sshd refuses to start without it.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key = _keygen(ssh_dir / f"host_{name}", f"archnest-test-{name}")
    host_key = " ".join(host_key.split()[:2])
    log = log_dir / f"sshd-{name}.log"
    last_error: TestEnvError | None = None
    for _attempt in range(3):
        port = free_port()
        config = ssh_dir / f"sshd_{name}.conf"
        config.write_text(_config(ssh_dir, name, port, docker_socket, max_sessions))
        run([SSHD, "-t", "-f", str(config)])  # a config error is clearer from -t
        proc = spawn([SSHD, "-D", "-e", "-f", str(config)], log)
        try:
            wait_until(
                f"sshd {name}", lambda p=port: _banner(p), timeout=15, proc=proc, log_path=log
            )
            return SshEndpoint(name, "127.0.0.1", port, host_key, fingerprint(host_key), proc.pid)
        except TestEnvError as exc:
            stop_group(proc.pid, grace=2)
            last_error = exc
            if "Address already in use" not in tail(log, 10):
                break
    assert last_error is not None
    raise last_error


def write_client_files(ssh_dir: Path, material: SshMaterial, endpoints: list[SshEndpoint]) -> None:
    """known_hosts and an ssh_config so `ssh -F D/ssh/config target` just works."""
    known = ssh_dir / "known_hosts"
    known.write_text("".join(f"[127.0.0.1]:{e.port} {e.host_key}\n" for e in endpoints))
    by_name = {e.name: e for e in endpoints}
    lines = []
    for e in endpoints:
        lines += [
            f"Host {e.name}",
            "  HostName 127.0.0.1",
            f"  Port {e.port}",
            f"  HostKeyAlias [127.0.0.1]:{e.port}",
        ]
    lines += [
        f"Host target-via-jump1\n  HostName 127.0.0.1\n  Port {by_name['target'].port}",
        "  ProxyJump jump1",
        f"Host target-via-jump2\n  HostName 127.0.0.1\n  Port {by_name['target'].port}",
        "  ProxyJump jump1,jump2",
        "Host *",
        f"  User {material.username}",
        f"  IdentityFile {material.private_key_path}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {known}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  ConnectTimeout 10",
        "  LogLevel ERROR",
    ]
    (ssh_dir / "config").write_text("\n".join(lines) + "\n")
    # OpenSSH reads ~/.ssh from the passwd entry, not $HOME, so tools that run a
    # bare `ssh` (docker -H ssh://target) get the config via this PATH entry.
    wrapper_dir = ssh_dir / "bin"
    wrapper_dir.mkdir(exist_ok=True)
    wrapper = wrapper_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {SSH_CLIENT} -F {ssh_dir / "config"} "$@"\n')
    wrapper.chmod(0o755)
