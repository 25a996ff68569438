"""Downloading 100,000 log lines keeps the app's memory flat, measured on the app served
as its own process (bench/log_download.py, run here with its own figures checked):
from the real dockerd through the docker source and through the ssh source, with a fast
and with a slow client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testenv import TestEnv

# The subject is a benchmark script's run, not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

ROOT = Path(__file__).resolve().parents[2]
LINES = 100_000
# A functional bound, not a speed figure: the log is over 5 MB (and its lines as
# objects several times that), the app may grow by buffers and allocator slack only.
RSS_BOUND_MB = 30.0


def test_100k_line_download_keeps_rss_flat(testenv: TestEnv, tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(testenv.to_json())
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "log_download.py"),
            "--testenv-file",
            str(env_file),
            "--lines",
            str(LINES),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads(out.read_text())["runs"]
    for name in ("docker", "docker, slow client", "ssh", "ssh, slow client"):
        run = runs[name]
        assert run["lines"] == LINES, (name, run)
        assert run["bytes"] > 5_000_000, (name, run)
        assert run["rss_growth_mb"] < RSS_BOUND_MB, (name, run, proc.stdout)
    # The measurement can see a log held whole: the route that reads it into memory
    # (format=text) grows the same process well past the bound.
    whole = runs["docker, read whole (format=text)"]
    assert whole["lines"] == LINES and whole["rss_growth_mb"] > RSS_BOUND_MB, whole
