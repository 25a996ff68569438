"""The project's own test environment: isolated dockerd, sshd x3 and PostgreSQL.

Usable from pytest (see tests/conftest.py, fixture ``testenv``) and from a shell::

    python -m tests.testenv up --json /tmp/env.json   # prints the coordinates
    python -m tests.testenv env --json /tmp/env.json  # shell exports for the CLI tools
    python -m tests.testenv down --json /tmp/env.json

Everything runs on 127.0.0.1 with ports chosen at runtime in a fresh temp dir,
so several runs can share one machine. Requires root.
"""

from .dockerd import IMAGE
from .env import TestEnv
from .lifecycle import down, load, up
from .procs import TestEnvError
from .sshd import SSH_USER, SshEndpoint, SshMaterial
from .tls import TlsMaterial

__all__ = [
    "IMAGE",
    "SSH_USER",
    "SshEndpoint",
    "SshMaterial",
    "TestEnv",
    "TestEnvError",
    "TlsMaterial",
    "down",
    "load",
    "up",
]
