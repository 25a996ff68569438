"""bench/agents.py still runs end to end in its ``--quick`` size: two replicas on the
test PostgreSQL behind HAProxy, simulated agents reporting through it, every answered
report in the database (a smoke test of the script with sane figures, not a load test)."""

from __future__ import annotations

from pathlib import Path

from tests.bench_run import run_bench
from tests.testenv import TestEnv


def test_agents_bench_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    _, r = run_bench("agents.py", tmp_path, "--quick", testenv=testenv)
    assert (r["agents"], r["interval_s"], r["duration_s"]) == (40, 2.0, 8.0)
    # Every agent reported several times; nothing failed, nothing answered was lost.
    assert r["ok"] == r["sent"] >= 40 * 3 and r["errors"] == {}
    assert r["stored"] == r["ok"] and r["lost"] == 0
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
    # Both replicas worked (round-robin) and were measured from their own processes.
    assert all(v > 0 for v in r["replica_cpu_percent_of_a_core"].values())
    assert all(v > 50 for v in r["replica_rss_mib"].values())
