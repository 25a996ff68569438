"""``archnest.ssh``: the SSH transport, a public module any plugin may use.

Targets with encrypted credentials, pinned host keys, jump chains and one pool of
long-lived connections per app (``app[SSH_POOL_KEY]``). What is in ``__all__`` is
documented in docs/plugin-authors.md ("The SSH transport"); the submodules are internal.
"""

from __future__ import annotations

from aiohttp import web

from .connect import ConnectSpec, HostKeyNotTrusted, SshAuthFailed, SshUnreachable
from .fields import SshTargetFields
from .models import SshTarget
from .pool import PooledProcess, SshPool, SshResult
from .targets import list_targets

SSH_POOL_KEY = web.AppKey("archnest_ssh_pool", SshPool)

__all__ = [
    "SSH_POOL_KEY",
    "ConnectSpec",
    "HostKeyNotTrusted",
    "PooledProcess",
    "SshAuthFailed",
    "SshPool",
    "SshResult",
    "SshTarget",
    "SshTargetFields",
    "SshUnreachable",
    "list_targets",
]
