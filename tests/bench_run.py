"""Running a bench script from a smoke test: its own process, against the session's
test environment (``--testenv-file``), its JSON result read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.testenv import TestEnv

ROOT = Path(__file__).resolve().parents[1]


def run_bench(
    script: str,
    tmp_path: Path,
    *args: str,
    testenv: TestEnv | None = None,
    timeout: float = 300,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run ``bench/<script> [--testenv-file F] ARGS --json OUT``; fail the test with the
    script's output unless it exits 0. Returns the process and the parsed result."""
    argv = [sys.executable, str(ROOT / "bench" / script)]
    if testenv is not None:
        env_file = tmp_path / "env.json"
        env_file.write_text(testenv.to_json())
        argv += ["--testenv-file", str(env_file)]
    out = tmp_path / "result.json"
    argv += [*args, "--json", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())
