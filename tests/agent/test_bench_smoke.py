"""bench/agent_ingest.py still runs end to end (tiny bounds: a smoke test, not a figure)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def test_agent_ingest_bench_smoke() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "agent_ingest.py"),
            "--reports",
            "60",
            "--duration",
            "20",
            "--senders",
            "4",
            "--hosts",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] == 60 and result["errors"] == {} and result["lost"] == 0
    assert result["stored_reports"] == result["accepted_reports"] == 65  # + 5 warm-up
    assert result["hosts"] == 5 and result["containers_per_report"] == 50
