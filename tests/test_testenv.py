"""The test environment itself works: real dockerd, sshd chains and PostgreSQL."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import asyncssh
import pytest

from tests.testenv import TestEnv, TlsMaterial, down, up

REPO_ROOT = Path(__file__).resolve().parents[1]


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self._path)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _tls_context(
    env: TestEnv, client: TlsMaterial | None, trust: str | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=trust or env.tls.ca_path)
    if client is not None:
        ctx.load_cert_chain(client.cert_path, client.key_path)
    return ctx


def _https(env: TestEnv, ctx: ssl.SSLContext) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", env.docker_tls_port, context=ctx, timeout=10)


# ---- lifecycle --------------------------------------------------------------


def test_startup_is_quick(testenv: TestEnv) -> None:
    # 0 when the environment was reused from ARCHNEST_TESTENV_FILE's writer: still fine.
    assert testenv.startup_seconds < 15


def test_endpoints_are_loopback_and_distinct(testenv: TestEnv) -> None:
    ports = [
        testenv.docker_tcp_port,
        testenv.docker_tls_port,
        testenv.ssh_target.port,
        testenv.ssh_jump1.port,
        testenv.ssh_jump2.port,
        testenv.pg_port,
    ]
    assert len(set(ports)) == len(ports)
    for endpoint in (testenv.ssh_target, testenv.ssh_jump1, testenv.ssh_jump2):
        assert endpoint.host == "127.0.0.1"
    assert len(testenv.docker_socket.encode()) < 108


# ---- docker engine API ------------------------------------------------------


def test_ping_over_unix_socket(testenv: TestEnv) -> None:
    assert testenv.docker_unix_url == f"unix://{testenv.docker_socket}"
    assert _get(_UnixHTTPConnection(testenv.docker_socket), "/_ping") == (200, b"OK")


def test_ping_over_plain_tcp(testenv: TestEnv) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", testenv.docker_tcp_port, timeout=10)
    assert _get(conn, "/_ping") == (200, b"OK")


def test_ping_over_mutual_tls(testenv: TestEnv) -> None:
    assert testenv.docker_tls_url == f"https://127.0.0.1:{testenv.docker_tls_port}"
    status, body = _get(_https(testenv, _tls_context(testenv, testenv.tls)), "/version")
    assert status == 200
    assert "ApiVersion" in json.loads(body)


@pytest.mark.parametrize("identity", ["rogue", "expired", "none"])
def test_tls_rejects_bad_client_certificates(testenv: TestEnv, identity: str) -> None:
    client = {"rogue": testenv.tls_rogue, "expired": testenv.tls_expired, "none": None}[identity]
    ctx = _tls_context(testenv, client)
    # With TLS 1.3 the server's verdict arrives after the client's handshake
    # completes, so the failure can surface on the request or on the read.
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        _get(_https(testenv, ctx), "/_ping")


def test_tls_server_is_not_trusted_with_another_ca(testenv: TestEnv) -> None:
    ctx = _tls_context(testenv, testenv.tls, trust=testenv.tls_rogue.ca_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        _get(_https(testenv, ctx), "/_ping")


def test_docker_cli_over_tls(testenv: TestEnv) -> None:
    version = testenv.docker(
        *testenv.docker_tls_cli_args(), "version", "--format", "{{.Server.Version}}"
    )
    assert version
    rejected = testenv.docker(*testenv.docker_tls_cli_args(testenv.tls_rogue), "ps", check=False)
    assert rejected == ""


def test_busybox_image_runs_and_prints(testenv_docker: TestEnv) -> None:
    env = testenv_docker
    assert env.image in env.docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert (
        env.run_container(cmd=["echo", "hello from busybox"], detach=False) == "hello from busybox"
    )


def test_run_container_with_env_labels_and_ports(testenv_docker: TestEnv) -> None:
    env = testenv_docker
    cid = env.run_container(
        "labelled",
        cmd=["sh", "-c", "echo started; exec sleep 600"],
        env={"APP_MODE": "test", "DB_PASSWORD": "hunter2"},
        labels={"com.example.role": "web"},
        ports=["18080:80"],
    )
    conn = http.client.HTTPConnection("127.0.0.1", env.docker_tcp_port, timeout=10)
    status, body = _get(conn, "/containers/json")
    assert status == 200
    listed = {c["Id"]: c for c in json.loads(body)}
    assert listed[cid]["Labels"] == {"com.example.role": "web"}
    # --bridge=none: the binding is recorded but nothing is published.
    assert listed[cid]["Ports"] == []
    inspect = json.loads(env.docker("inspect", cid))[0]
    assert inspect["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "18080"}]
    }
    assert "DB_PASSWORD=hunter2" in inspect["Config"]["Env"]
    deadline = time.monotonic() + 10
    while "started" not in env.docker("logs", cid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert env.docker("logs", cid) == "started"
    env.remove_all_containers()
    assert env.docker("ps", "-aq") == ""


# ---- ssh --------------------------------------------------------------------


def _known_hosts(*endpoints: object) -> asyncssh.SSHKnownHosts:
    lines = "".join(f"[{e.host}]:{e.port} {e.host_key}\n" for e in endpoints)  # type: ignore[attr-defined]
    return asyncssh.import_known_hosts(lines)


def _key_options(env: TestEnv) -> dict[str, object]:
    return {
        "username": env.ssh.username,
        "client_keys": [asyncssh.import_private_key(env.ssh.private_key)],
        "known_hosts": _known_hosts(env.ssh_target, env.ssh_jump1, env.ssh_jump2),
        "agent_path": None,
        "password": None,
    }


async def _whoami(conn: asyncssh.SSHClientConnection) -> str:
    result = await conn.run("whoami", check=True, timeout=20)
    return str(result.stdout).strip()


async def test_ssh_with_key(testenv: TestEnv) -> None:
    t = testenv.ssh_target
    async with asyncssh.connect(t.host, t.port, **_key_options(testenv)) as conn:
        assert await _whoami(conn) == testenv.ssh.username


async def test_ssh_with_encrypted_key(testenv: TestEnv) -> None:
    t = testenv.ssh_target
    with pytest.raises(asyncssh.KeyImportError):
        asyncssh.import_private_key(testenv.ssh.encrypted_private_key)
    key = asyncssh.import_private_key(testenv.ssh.encrypted_private_key, testenv.ssh.passphrase)
    options = {**_key_options(testenv), "client_keys": [key]}
    async with asyncssh.connect(t.host, t.port, **options) as conn:
        assert await _whoami(conn) == testenv.ssh.username


async def test_ssh_with_password(testenv: TestEnv) -> None:
    t = testenv.ssh_target
    options = {**_key_options(testenv), "client_keys": None, "password": testenv.ssh.password}
    async with asyncssh.connect(t.host, t.port, **options) as conn:
        assert await _whoami(conn) == testenv.ssh.username
    options["password"] = testenv.ssh.password + "-wrong"
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(t.host, t.port, **options)


async def test_ssh_with_certificate(testenv: TestEnv) -> None:
    t = testenv.ssh_target
    key = asyncssh.import_private_key(testenv.ssh.cert_private_key)
    cert = asyncssh.import_certificate(testenv.ssh.certificate)
    # The cert key alone is not authorised: only the CA signature lets it in.
    bare = {**_key_options(testenv), "client_keys": [key]}
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(t.host, t.port, **bare)
    for user in (testenv.ssh.username, "root"):
        options = {**_key_options(testenv), "username": user, "client_keys": [(key, cert)]}
        async with asyncssh.connect(t.host, t.port, **options) as conn:
            assert await _whoami(conn) == user


async def test_ssh_root_with_key(testenv: TestEnv) -> None:
    t = testenv.ssh_target
    async with asyncssh.connect(
        t.host, t.port, **{**_key_options(testenv), "username": "root"}
    ) as conn:
        assert await _whoami(conn) == "root"


async def test_ssh_host_key_pinning(testenv: TestEnv) -> None:
    t = testenv.ssh_target
    assert t.host_key.startswith("ssh-ed25519 AAAA")
    keygen = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"], input=t.host_key.encode(), capture_output=True, check=True
    )
    assert keygen.stdout.decode().split()[1] == t.host_key_fingerprint
    # Pinning the jump host's key for the target must be refused.
    wrong = {**_key_options(testenv), "known_hosts": asyncssh.import_known_hosts(
        f"[{t.host}]:{t.port} {testenv.ssh_jump1.host_key}\n")}  # fmt: skip
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await asyncssh.connect(t.host, t.port, **wrong)


async def test_ssh_through_one_jump_host(testenv: TestEnv) -> None:
    options = _key_options(testenv)
    j1, t = testenv.ssh_jump1, testenv.ssh_target
    async with asyncssh.connect(j1.host, j1.port, **options) as jump:
        async with asyncssh.connect(t.host, t.port, tunnel=jump, **options) as conn:
            assert await _whoami(conn) == testenv.ssh.username


async def test_ssh_through_two_jump_hosts(testenv: TestEnv) -> None:
    options = _key_options(testenv)
    j1, j2, t = testenv.ssh_jump1, testenv.ssh_jump2, testenv.ssh_target
    async with asyncssh.connect(j1.host, j1.port, **options) as hop1:
        async with asyncssh.connect(j2.host, j2.port, tunnel=hop1, **options) as hop2:
            async with asyncssh.connect(t.host, t.port, tunnel=hop2, **options) as conn:
                result = await conn.run("echo $DOCKER_HOST", check=True, timeout=20)
                assert str(result.stdout).strip() == testenv.docker_unix_url


async def test_docker_ps_over_ssh_hits_the_test_daemon(testenv_docker: TestEnv) -> None:
    env = testenv_docker
    env.run_container("seen-over-ssh")
    t = env.ssh_target
    async with asyncssh.connect(t.host, t.port, **_key_options(env)) as conn:
        result = await conn.run("docker ps --format '{{.Names}}'", check=True, timeout=30)
    assert "seen-over-ssh" in str(result.stdout).split()


def test_openssh_client_config_and_jump_chain(testenv_docker: TestEnv) -> None:
    env = testenv_docker
    env.run_container("seen-via-jumps")
    names = env.ssh_cli("target-via-jump2", "docker", "ps", "--format", "'{{.Names}}'")
    assert "seen-via-jumps" in names.split()
    out = subprocess.run(
        ["docker", "-H", "ssh://target", "ps", "--format", "{{.Names}}"],
        env=env.docker_ssh_cli_env(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert "seen-via-jumps" in out.stdout.decode().split()


# ---- postgres ---------------------------------------------------------------


async def test_postgres_accepts_connections(testenv: TestEnv) -> None:
    assert testenv.pg_url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    conn = await asyncpg.connect(testenv.pg_dsn, timeout=10)
    try:
        version = await conn.fetchval("SHOW server_version")
        assert await conn.fetchval("SELECT current_database()") == "archnest_test"
    finally:
        await conn.close()
    assert int(str(version).split(".")[0]) >= 15


async def test_fresh_database_per_test(testenv_pg_url: str) -> None:
    conn = await asyncpg.connect(testenv_pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname='public'") == 0
        await conn.execute("CREATE TABLE t (x int)")
    finally:
        await conn.close()


# ---- isolation and teardown ---------------------------------------------------


def _mentions(path: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if path.encode() + b"/" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_second_environment_is_independent_and_leaves_nothing(testenv: TestEnv) -> None:
    other = up(register_atexit=False, quiet=True)
    try:
        assert other.tmpdir != testenv.tmpdir
        assert other.docker_tcp_port != testenv.docker_tcp_port
        # Containers of one daemon are invisible to the other.
        other.run_container("only-in-other")
        assert "only-in-other" not in testenv.docker("ps", "--format", "{{.Names}}").split()
    finally:
        down(other)
    down(other)  # idempotent
    assert not os.path.exists(other.tmpdir)
    assert _mentions(other.tmpdir) == []
    assert other.tmpdir not in Path("/proc/mounts").read_text()


def test_reaper_cleans_up_after_a_killed_process(testenv: TestEnv) -> None:
    script = (
        "import os, signal\n"
        "from tests.testenv import up\n"
        "env = up(quiet=True)\n"
        "print(env.tmpdir, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"  # no atexit: only the reaper can clean up
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, timeout=120, check=False
    )
    tmpdir = proc.stdout.decode().strip()
    assert tmpdir.startswith("/"), proc.stderr.decode()
    deadline = time.monotonic() + 60
    # The reaper's own command line names the temp dir; it exits right after rmtree.
    while (os.path.exists(tmpdir) or _mentions(tmpdir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(tmpdir)
    assert _mentions(tmpdir) == []
