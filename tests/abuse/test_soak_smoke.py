"""bench/soak.py runs end to end against the real dockerd and sshd: a short soak (about
20 s of traffic instead of 10 minutes) whose bounds on file descriptors, SSH channels
and memory must hold, with every kind of traffic exercised."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_run import run_bench
from tests.testenv import TestEnv

# The subject is streams and processes (descriptors, channels, signals), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


def test_soak_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    proc, result = run_bench(
        "soak.py", tmp_path, "--minutes", "0.33", "--warmup", "3", testenv=testenv
    )
    assert "within bounds" in proc.stdout
    assert result["over_bounds"] == [] and result["app_alive"]
    # Every kind of traffic ran, on the docker and the ssh hosts.
    assert set(result["ok"]) == {"list", "detail", "follow", "terminal", "agent_report"}
    assert all(n > 0 for n in result["ok"].values()), result["ok"]
    assert result["hosts"]["docker"] and result["hosts"]["ssh"]
    # The samples read real figures of the app process (and the sshd's Engine API relay).
    for key in ("start", "end"):
        assert result[key]["fds"] > 0 and result[key]["rss_bytes"] > 0
        assert result[key]["ssh_connections"] >= 1
    # Nothing the script started is left on the daemon.
    assert "soak-" not in testenv.docker("ps", "-a", "--format", "{{.Names}}")
