"""bench/fleet.py still runs end to end in its ``--quick`` size: the emulator, the app as
its own process, events to a subscriber, the idle reading and containers on the real
dockerd (a smoke test of the script with sane figures, not a speed check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testenv import TestEnv

# The subject is a benchmark script's run, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

ROOT = Path(__file__).resolve().parents[2]


def test_fleet_bench_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(testenv.to_json())
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fleet.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "ARCHNEST_TESTENV_FILE": str(env_file)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert (r["engines"], r["containers_per_engine"]) == (20, 10)
    assert r["ready"]["hosts_ok"] == 20 and r["ready"]["containers_listed"] == 200
    # The server filters and pages: the first page is smaller than the whole fleet.
    assert r["list_params"] == {"api": True, "ui": True}
    pages = r["pages"]
    assert pages["api_first_page"]["bytes"] < pages["api_whole_fleet"]["bytes"]
    for page in pages.values():
        assert page["n"] == 10 and 0 < page["p50_ms"] <= page["p99_ms"] and page["bytes"] > 0
        assert page["server_cpu_ms"] > 0  # read from the app's own process
    # Every change reached the subscriber, with the engine's new state.
    assert r["events_endpoint"] is True
    ev = r["events"]
    assert (ev["n"], ev["missed"], ev["wrong_state"]) == (10, 0, 0)
    assert 0 < ev["p50_ms"] <= ev["p99_ms"]
    idle = r["idle"]
    assert idle["engine_subscriptions"] == 20
    assert 0 <= idle["cpu_percent"] < 100 and idle["rss_mib"] > 20
    real = r["real"]
    # Rounds count only with all 50 listed before and after (others may clean the engine).
    assert real["created"] == 50 and real["host_partial"]["n"] == 10
    assert 0 < real["host_partial"]["p50_ms"] and real["host_partial"]["bytes"] > 0
    assert "(b) change -> subscriber p99" in proc.stdout
    # Its containers are gone again.
    left = testenv.docker("ps", "-aq", "--filter", "label=archnest.bench.fleet")
    assert left.strip() == ""
