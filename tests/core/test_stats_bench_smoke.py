"""bench/stats_collector.py still runs end to end (small bounds: a smoke test of the
script, not a figure; nothing is timed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_run import run_bench

# The subject is a benchmark script's run, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral


def test_stats_collector_bench_smoke(tmp_path: Path) -> None:
    _, result = run_bench(
        "stats_collector.py",
        tmp_path,
        "--hosts",
        "2",
        "--containers",
        "3",
        "--rounds",
        "2",
        "--day-containers",
        "1",
    )
    assert result["collector"]["samples"] == 12
    assert result["collector"]["cpu_ms_per_1000_samples"] > 0
    # A day at 30 s: 2880 raw rows, 288 five-minute and 24 hourly ones.
    assert result["storage"]["rows_per_tier"] == {"0": 2880, "1": 288, "2": 24}
    assert result["storage"]["bytes_per_container_per_day"] > 0
