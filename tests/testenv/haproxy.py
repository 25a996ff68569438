"""HAProxy (the Debian package) in front of app replicas, round-robin, health-checked
on ``/healthz``: the configuration docs/operations.md shows, for the replica tests and
bench/agents.py."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .serve import free_port

CONFIG = """
global
    # Within the fd limit of an ordinary shell (two descriptors per connection).
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A replica busy with a burst answers /healthz late, not never: a check that
    # waited only the 300 ms of its interval took both out at once under load.
    timeout check 2s
    # Server-sent events and terminals stay open for as long as they are used.
    timeout tunnel 1h
    option redispatch
    retries 2
    retry-on conn-failure empty-response 503
frontend archnest
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 500ms fall 3 rise 2
    # Which replica answered (for tests; a real setup does not need it).
    http-response set-header X-Replica %s
{servers}
"""


@contextmanager
def haproxy(workdir: Path, replicas: dict[str, int]) -> Iterator[str]:
    """HAProxy on a free loopback port before ``replicas`` (name -> loopback port);
    yields its base URL, stops it on leaving. Its log is ``workdir/haproxy.log``."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    servers = "\n".join(f"    server {n} 127.0.0.1:{p} check" for n, p in replicas.items())
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(CONFIG.format(port=port, servers=servers))
    with (workdir / "haproxy.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
