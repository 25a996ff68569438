"""Opening one SSH connection (or a chain of them) with pinned host keys.

Trust comes only from the target's saved ``host_keys``: no ``~/.ssh/known_hosts``, no
``~/.ssh/config``, no agent, no default identity files. An unknown or changed key fails
the handshake before authentication, so nothing can run on an impostor.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from ..errors import BadRequest, HostError, HostTimeout


class HostKeyNotTrusted(HostError):
    code = "host_key_not_trusted"
    # The key the server presented ("ssh-ed25519 AAAA..."), when it got that far, and the
    # keys pinned for it: a connection test shows them side by side.
    presented: str | None = None
    pinned: tuple[str, ...] = ()


class SshUnreachable(HostError):
    code = "ssh_unreachable"


class SshAuthFailed(HostError):
    code = "ssh_auth_failed"


@dataclass(frozen=True)
class ConnectSpec:
    """Everything needed to reach one target, credentials already decrypted."""

    id: int
    name: str
    host: str
    port: int
    username: str
    auth: str
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    certificate: str | None = None
    host_keys: tuple[str, ...] = ()
    # The fields plugins add to the target (``SshTargetFields``), by field name, e.g.
    # docker_ssh's ``docker`` and ``sudo``; the transport itself does not read them.
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


def fingerprint(key: asyncssh.SSHKey | str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key (object or "type base64")."""
    if isinstance(key, str):
        blob = base64.b64decode(key.split()[1])
    else:
        blob = key.public_data
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_line(key: asyncssh.SSHKey) -> str:
    """``"ssh-ed25519 AAAA..."`` without a comment: the form stored in ``host_keys``."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def parse_host_key(line: str) -> str:
    """Validate one ``host_keys`` entry and return its normalised form (400 if bad)."""
    try:
        key = asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError, IndexError) as exc:
        raise BadRequest(
            f"invalid host key {line[:40]!r}: {exc}", code="invalid_host_key", field="host_keys"
        ) from exc
    return key_line(key)


def load_client_key(spec: ConnectSpec) -> list | None:
    """The ``client_keys`` argument for this target (None disables public-key auth)."""
    if spec.auth not in ("key", "certificate") or not spec.private_key:
        return None
    key = asyncssh.import_private_key(spec.private_key, spec.passphrase or None)
    if spec.auth == "certificate" and spec.certificate:
        return [(key, asyncssh.import_certificate(spec.certificate))]
    return [key]


class _PinnedClient(asyncssh.SSHClient):
    """Remembers the key an untrusted server presented, for a useful error message."""

    def __init__(self) -> None:
        self.presented: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key
        return False


def _trusted_keys(spec: ConnectSpec) -> list[asyncssh.SSHKey]:
    keys = []
    for line in spec.host_keys:
        try:
            keys.append(asyncssh.import_public_key(line))
        except (asyncssh.KeyImportError, ValueError):
            continue  # a corrupt entry trusts nothing
    return keys


async def connect_one(
    spec: ConnectSpec,
    tunnel: asyncssh.SSHClientConnection | None,
    *,
    connect_timeout: float,
    keepalive: float,
) -> asyncssh.SSHClientConnection:
    """One hop. Raises HostKeyNotTrusted / SshAuthFailed / SshUnreachable / HostTimeout."""
    client = _PinnedClient()
    where = f"{spec.name} ({spec.host}:{spec.port})"
    try:
        client_keys = load_client_key(spec)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
        raise SshAuthFailed(f"{where}: the stored private key cannot be loaded") from exc
    options: dict = {
        "username": spec.username,
        # Lists, not a file: exactly the pinned keys, no CA keys, nothing from ~/.ssh.
        "known_hosts": (_trusted_keys(spec), [], []),
        "config": None,
        "agent_path": None,
        "client_keys": client_keys,
        "password": spec.password if spec.auth == "password" else None,
        "preferred_auth": "publickey" if client_keys else "password,keyboard-interactive",
        "gss_auth": False,
        "x509_trusted_certs": None,
        # AES-GCM first: one AEAD call per packet with AES-NI, measurably cheaper in this
        # pure-Python SSH stack than chacha20-poly1305 (asyncssh's default first choice).
        "encryption_algs": [
            "aes128-gcm@openssh.com",
            "aes256-gcm@openssh.com",
            "chacha20-poly1305@openssh.com",
            "aes128-ctr",
            "aes256-ctr",
        ],
        "keepalive_interval": keepalive,
        "keepalive_count_max": 3,
        "connect_timeout": connect_timeout,
        "login_timeout": connect_timeout,
        "tunnel": tunnel,
        "client_factory": lambda: client,
    }
    try:
        return await asyncssh.connect(spec.host, spec.port, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        if client.presented is not None:
            shown = f"{client.presented.get_algorithm()} {fingerprint(client.presented)}"
            error = HostKeyNotTrusted(
                f"{where}: host key not trusted: presented {shown} ; confirm it with scan-host-key"
            )
            error.presented = key_line(client.presented)
            error.pinned = tuple(spec.host_keys)
            raise error from exc
        raise HostKeyNotTrusted(f"{where}: host key not trusted: {exc.reason}") from exc
    except asyncssh.PermissionDenied as exc:
        raise SshAuthFailed(f"{where}: authentication failed for {spec.username!r}") from exc
    except TimeoutError as exc:
        raise HostTimeout(f"{where}: no SSH answer within {connect_timeout:g}s") from exc
    except (OSError, asyncssh.Error) as exc:
        raise SshUnreachable(f"{where}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return f"cannot connect: {reason or type(exc).__name__}"


async def connect_chain(
    chain: list[ConnectSpec], *, connect_timeout: float, keepalive: float
) -> list[asyncssh.SSHClientConnection]:
    """Connect hop by hop (each through the previous); returns every connection, the
    target's last. On failure the hops already open are closed."""
    conns: list[asyncssh.SSHClientConnection] = []
    try:
        for spec in chain:
            tunnel = conns[-1] if conns else None
            conns.append(
                await connect_one(
                    spec, tunnel, connect_timeout=connect_timeout, keepalive=keepalive
                )
            )
    except BaseException:
        close_all(conns)
        raise
    return conns


def close_all(conns: list[asyncssh.SSHClientConnection]) -> None:
    for conn in reversed(conns):
        conn.close()


async def scan_host_key(
    spec: ConnectSpec, tunnel: asyncssh.SSHClientConnection | None, *, connect_timeout: float
) -> asyncssh.SSHKey:
    """The key the server presents. Trusts nothing and never authenticates."""
    where = f"{spec.name} ({spec.host}:{spec.port})"
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(spec.host, spec.port, tunnel=tunnel, config=None),
            connect_timeout,
        )
    except TimeoutError as exc:
        raise HostTimeout(f"{where}: no SSH answer within {connect_timeout:g}s") from exc
    except (OSError, asyncssh.Error) as exc:
        raise SshUnreachable(f"{where}: {_describe(exc)}") from exc
    if key is None:
        raise SshUnreachable(f"{where}: the server presented no host key")
    return key
