"""The core SSH transport: targets with encrypted credentials, pinned host keys, jump
chains and a pool of long-lived connections (``app[SSH_POOL_KEY]``)."""

from __future__ import annotations

from aiohttp import web

from .connect import ConnectSpec, HostKeyNotTrusted, SshAuthFailed, SshUnreachable, fingerprint
from .pool import PooledProcess, SshPool, SshResult

SSH_POOL_KEY = web.AppKey("archnest_ssh_pool", SshPool)

__all__ = [
    "SSH_POOL_KEY",
    "ConnectSpec",
    "HostKeyNotTrusted",
    "PooledProcess",
    "SshAuthFailed",
    "SshPool",
    "SshResult",
    "SshUnreachable",
    "fingerprint",
]
