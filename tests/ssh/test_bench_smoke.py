"""bench/ssh_list.py still runs end to end against the real sshd and dockerd, relay
included (small bounds: a smoke test of the script, not a figure; nothing is timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.testenv import TestEnv

ROOT = Path(__file__).resolve().parents[2]


def test_ssh_bench_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(testenv.to_json())
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "ssh_list.py"),
            "--testenv-file",
            str(env_file),
            "--rounds",
            "20",
            "--targets",
            "2",
            "--containers",
            "2",
            "--rtt-ms",
            "5",
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
