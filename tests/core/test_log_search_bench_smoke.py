"""bench/log_search.py still runs end to end against the real dockerd and sshd (small
bounds: a smoke test of the script, not a figure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_run import run_bench
from tests.testenv import TestEnv

# The subject is a benchmark script's run, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


def test_log_search_bench_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    # Exit 0: every search read every line and found the marker once per host.
    proc, result = run_bench(
        "log_search.py",
        tmp_path,
        "--containers",
        "3",
        "--lines",
        "300",
        "--runs",
        "1",
        testenv=testenv,
    )
    p50 = result["p50"]
    assert set(p50) == {"docker", "ssh", "both", "cli grep (unix socket)", "cli grep over ssh"}
    for case in ("docker", "ssh", "both"):
        assert 0 < p50[case]["found_s"] <= p50[case]["total_s"]
    assert "marker found s" in proc.stdout
