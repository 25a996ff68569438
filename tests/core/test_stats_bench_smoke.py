"""bench/stats_collector.py still runs end to end (small bounds: a smoke test of the
script, not a figure; nothing is timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stats_collector_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "stats_collector.py"),
            "--hosts",
            "2",
            "--containers",
            "3",
            "--rounds",
            "2",
            "--day-containers",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["collector"]["samples"] == 12
    assert result["collector"]["cpu_ms_per_1000_samples"] > 0
    # A day at 30 s: 2880 raw rows, 288 five-minute and 24 hourly ones.
    assert result["storage"]["rows_per_tier"] == {"0": 2880, "1": 288, "2": 24}
    assert result["storage"]["bytes_per_container_per_day"] > 0
