"""bench/log_search.py still runs end to end against the real dockerd and sshd (small
bounds: a smoke test of the script, not a figure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.testenv import TestEnv

ROOT = Path(__file__).resolve().parents[2]


def test_log_search_bench_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(testenv.to_json())
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "log_search.py"),
            "--testenv-file",
            str(env_file),
            "--containers",
            "3",
            "--lines",
            "300",
            "--runs",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    # Exit 0: every search read every line and found the marker once per host.
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    p50 = result["p50"]
    assert set(p50) == {"docker", "ssh", "both", "cli grep (unix socket)", "cli grep over ssh"}
    for case in ("docker", "ssh", "both"):
        assert 0 < p50[case]["found_s"] <= p50[case]["total_s"]
    assert "marker found s" in proc.stdout
