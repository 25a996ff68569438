"""bench/ssh_list.py still runs end to end against the real sshd and dockerd, relay
included (small bounds: a smoke test of the script, not a figure; nothing is timed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_run import run_bench
from tests.testenv import TestEnv

# The subject is a benchmark script's run, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


def test_ssh_bench_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    proc, result = run_bench(
        "ssh_list.py",
        tmp_path,
        "--rounds",
        "20",
        "--targets",
        "2",
        "--containers",
        "2",
        "--rtt-ms",
        "5",
        testenv=testenv,
    )
    assert result["rtt_ms"] == [0.0, 5.0]
    assert (
        set(result["fan_out_over_one"])
        == set(result["aggregated_fan_out_over_one"])
        == {
            "0",
            "5",
        }
    )
    med = result["median_seconds"]
    assert all(
        med[f"{k}@{rtt}"] > 0 for k in ("one", "fan", "agg_one", "agg_fan") for rtt in (0, 5)
    )
    # The relay really delays: a round trip through it cannot beat its own 5 ms.
    assert med["one@5"] >= 0.005
    # The CPU accounting found the app and the remote side (dockerd answered the lists).
    split = result["cpu_seconds_per_listing_in_fan_out"]
    assert split["app"] > 0 and split["remote"] > 0 and split["client"] > 0
    assert "fan-out (target <= 2x)" in proc.stdout
