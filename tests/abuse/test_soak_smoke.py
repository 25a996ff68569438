"""bench/soak.py runs end to end against the real dockerd and sshd: a short soak (about
20 s of traffic instead of 10 minutes) whose bounds on file descriptors, SSH channels
and memory must hold, with every kind of traffic exercised."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.testenv import TestEnv

ROOT = Path(__file__).resolve().parents[2]


def test_soak_smoke(testenv: TestEnv, tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(testenv.to_json())
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--testenv-file",
            str(env_file),
            "--minutes",
            "0.33",
            "--warmup",
            "3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "within bounds" in proc.stdout
    result = json.loads(out.read_text())
    assert result["over_bounds"] == [] and result["app_alive"]
    # Every kind of traffic ran, on the docker and the ssh hosts.
    assert set(result["ok"]) == {"list", "detail", "follow", "terminal", "agent_report"}
    assert all(n > 0 for n in result["ok"].values()), result["ok"]
    assert result["hosts"]["docker"] and result["hosts"]["ssh"]
    # The samples read real figures of the app process (and the sshd's Engine API relay).
    for key in ("start", "end"):
        assert result[key]["fds"] > 0 and result[key]["rss_bytes"] > 0
        assert result[key]["ssh_connections"] >= 1
    # Nothing the script started is left on the daemon.
    assert "soak-" not in testenv.docker("ps", "-a", "--format", "{{.Names}}")
