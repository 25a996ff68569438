"""bench/detail.py still runs end to end against the real dockerd and sshd (small
bounds: a smoke test of the script, not a figure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_run import run_bench
from tests.testenv import TestEnv

# The subject is a benchmark script's run, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


def test_detail_bench_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    proc, result = run_bench(
        "detail.py",
        tmp_path,
        "--rounds",
        "5",
        "--cli-rounds",
        "1",
        "--stats-rounds",
        "1",
        testenv=testenv,
    )
    detail, sample = result["detail"], result["stats_sample"]
    for source in ("docker", "ssh"):
        assert detail[source]["n"] == 5 and detail[source]["p50_ms"] > 0
        # The detail no longer waits for a sample: on either source it is faster than
        # the sample alone, which needs two of the engine's readings a second apart.
        assert detail[source]["p50_ms"] < sample[source]["p50_ms"], (source, result)
        assert result["app_cpu_ms_per_detail"][source] > 0
    assert result["raw_engine_inspect"]["n"] == 5
    assert set(result["ratios"]) == {
        "docker_over_raw_inspect",
        "ssh_over_docker_h_ssh_inspect",
        "ssh_over_ssh_docker_inspect",
    }
    assert "p50 <= 100 ms on docker and ssh" in proc.stdout
