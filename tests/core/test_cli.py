"""The ``archnest`` command, run as a real process."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def _run(args, env, stdin=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "archnest", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli_env(tmp_path, archnest_empty_database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHNEST_")}
    env.update(
        ARCHNEST_DATA_DIR=str(tmp_path / "data"),
        ARCHNEST_DATABASE_URL=archnest_empty_database_url,
        ARCHNEST_ADD_LOCAL_DOCKER="0",
    )
    return env


def test_db_user_token_and_plugins(cli_env):
    r = _run(["db", "upgrade"], cli_env)
    assert r.returncode == 0, r.stderr
    assert "core" in r.stdout and "(behind)" not in r.stdout
    r = _run(["db", "current"], cli_env)
    assert r.returncode == 0 and "current=core_0" in r.stdout
    r = _run(
        ["user", "add", "bob", "--admin", "--password-stdin"], cli_env, stdin="correct-horse-1\n"
    )
    assert r.returncode == 0, r.stderr
    r = _run(["user", "add", "bob", "--password-stdin"], cli_env, stdin="correct-horse-1\n")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = _run(["token", "create", "bob", "--name", "ci"], cli_env)
    assert r.returncode == 0 and r.stdout.strip().startswith("an_")
    # The token is shown once and never stored in plain text.
    db_file = cli_env["ARCHNEST_DATA_DIR"] + "/archnest.db"
    if os.path.exists(db_file):
        assert r.stdout.strip().encode() not in open(db_file, "rb").read()
    r = _run(["plugins"], cli_env)
    assert r.returncode == 0
    for name in ("docker_tcp", "docker_ssh", "docker_agent"):
        assert name in r.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_first_run_prints_one_time_password(cli_env):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "archnest", "serve", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("server did not come up")
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert "one-time password" in err
    password = err.split("one-time password: ")[1].split()[0]
    assert len(password) >= 12
    # It is printed for the operator, never written to the log lines.
    assert err.count(password) == 1
