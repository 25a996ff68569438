"""Schema-1 agent reports built in Python (shaped like the agent's real output).

Used by the tests that do not need dockerd and by bench/agent_ingest.py.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any


def _cid(host: str, i: int) -> str:
    return hashlib.sha256(f"{host}/{i}".encode()).hexdigest()


def make_container(host: str, i: int, *, running: bool = True) -> dict[str, Any]:
    cid = _cid(host, i)
    return {
        "Id": cid,
        "Name": f"/svc-{i:03d}",
        "Created": "2026-11-27T03:29:23.789127169Z",
        "Image": "sha256:" + hashlib.sha256(b"image").hexdigest(),
        "RestartCount": i % 3,
        "Config": {
            "Image": f"registry.example.org/team/app-{i % 7}:1.{i % 5}",
            "Cmd": ["/app/server", "--port", "8080"],
            "Entrypoint": ["/sbin/tini", "--"],
            "Labels": {
                "com.docker.compose.project": "stack",
                "com.docker.compose.service": f"svc-{i:03d}",
                "org.opencontainers.image.version": "1.2.3",
                "tier": "backend",
            },
            "User": "1000:1000",
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                "APP_PORT=8080",
                "LOG_LEVEL=info",
                f"SERVICE_NAME=svc-{i:03d}",
                "DB_PASSWORD=****",
                "API_TOKEN=****",
                "DATABASE_URL=****",
            ],
        },
        "State": {
            "Status": "running" if running else "exited",
            "Running": running,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": 1000 + i if running else 0,
            "ExitCode": 0 if running else 137,
            "Error": "",
            "StartedAt": "2026-11-27T03:29:23.982974967Z",
            "FinishedAt": "0001-01-01T00:00:00Z" if running else "2026-11-27T04:00:00.5Z",
            "Health": {"Status": "healthy", "FailingStreak": 0},
        },
        "HostConfig": {"RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}},
        "NetworkSettings": {
            "Ports": {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(18000 + i)}]},
            "Networks": {
                "stack_default": {
                    "IPAddress": f"172.18.0.{i % 250 + 2}",
                    "MacAddress": "02:42:ac:12:00:02",
                    "Gateway": "172.18.0.1",
                }
            },
        },
        "Mounts": [
            {
                "Type": "volume",
                "Name": f"stack_data{i}",
                "Source": f"/var/lib/docker/volumes/stack_data{i}/_data",
                "Destination": "/data",
                "Mode": "z",
                "RW": True,
            }
        ],
    }


def make_report(
    host: str = "bench-host", containers: int = 50, *, agent_version: str = "1.0.0"
) -> dict[str, Any]:
    """A schema-1 report of ``containers`` containers (every fifth one exited)."""
    items = [make_container(host, i, running=i % 5 != 4) for i in range(containers)]
    stats = {
        c["Id"]: {
            "cpu_percent": 0.5,
            "mem_usage_bytes": 50_000_000 + n,
            "mem_limit_bytes": 2_147_483_648,
            "net_rx_bytes": 1_000 * n,
            "net_tx_bytes": 2_000 * n,
            "block_read_bytes": 4096,
            "block_write_bytes": 8192,
            "pids": 4,
        }
        for n, c in enumerate(items)
        if c["State"]["Running"]
    }
    return {
        "schema": 1,
        "agent_version": agent_version,
        "host": host,
        "reported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": {"version": "28.2.2", "api_version": "1.50", "os": "linux", "arch": "amd64"},
        "host_facts": {
            "hostname": host,
            "kernel": "6.1.0",
            "os": "Debian GNU/Linux 12 (bookworm)",
            "arch": "x86_64",
            "cpus": 2,
            "mem_total_bytes": 25_276_502_016,
        },
        "containers": items,
        "stats": stats,
    }
