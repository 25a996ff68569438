"""No command injection: a ref is refused before any SSH traffic, or reaches the remote
docker CLI as exactly one argument."""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path
from urllib.parse import quote

import pytest
from archnest import REF_PATTERN
from archnest.ssh import SSH_POOL_KEY
from archnest_docker_ssh import commands
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

# The subject is an SSH transport (the sshd and dockerd behind it), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

MARKER_DIR = Path("/tmp")


def payloads(marker: str) -> list[str]:
    touch = f"touch {marker}"
    return [
        f";{touch}",
        f"x; {touch}",
        f"x && {touch}",
        f"x || {touch}",
        f"x | {touch}",
        f"$({touch})",
        f"`{touch}`",
        f"x\n{touch}",
        f"x\r\n{touch}",
        f"x\x00{touch}",
        f"x'; {touch}; '",
        f'x"; {touch}; "',
        f"x' && {touch} && echo '",
        "-rf",
        "--format={{json .}}",
        "--format",
        f"--help;{touch}",
        f"x>{marker}",
        f"x$IFS{touch}",
        "../../etc/passwd",
        "x y",
        " x",
        "*",
    ]


def url_for(host: int, ref: str, tail: str = "") -> URL:
    return URL(f"/api/docker-ssh/hosts/{host}/containers/{quote(ref, safe='')}{tail}", encoded=True)


@pytest.fixture
async def docker_target(chain_target) -> dict:
    return await chain_target(0, "key")


async def test_classic_payloads_get_400_and_create_nothing(
    archnest_client, admin_headers, docker_target, testenv_docker
):
    c, h, tid = archnest_client, admin_headers, docker_target["id"]
    # Warm the pool, then count: a refused ref must not open a single channel.
    assert (await c.get(f"/api/docker-ssh/hosts/{tid}/containers", headers=h)).status == 200
    pool = c.app[SSH_POOL_KEY]
    before = (pool.connects, pool.channels_opened)
    marker = MARKER_DIR / f"archnest-injected-{secrets.token_hex(6)}"
    for ref in payloads(str(marker)):
        for method, tail in [("GET", ""), ("GET", "/logs"), ("POST", "/stop"), ("POST", "/remove")]:
            r = await c.request(method, url_for(tid, ref, tail), headers=h)
            assert r.status == 400, (ref, method, tail, r.status)
            assert (await r.json())["error"]["code"] == "invalid_ref"
        ws_url = URL("/api/docker-ssh/exec").with_query(host=str(tid), container=ref, cmd="sh")
        r = await c.get(ws_url, headers={**h, "Connection": "Upgrade", "Upgrade": "websocket"})
        assert r.status == 400, (ref, r.status)
    assert (pool.connects, pool.channels_opened) == before
    assert not marker.exists()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ref=st.one_of(st.text(), st.from_regex(REF_PATTERN, fullmatch=True)))
async def test_any_ref_is_400_before_ssh_or_exactly_one_remote_argument(
    archnest_client, admin_headers, docker_target, ref
):
    c, h, tid = archnest_client, admin_headers, docker_target["id"]
    pool = c.app[SSH_POOL_KEY]
    before = (pool.connects, pool.channels_opened)
    r = await c.get(
        URL("/api/docker-ssh/exec").with_query(host=str(tid), container=ref, cmd="sh"),
        headers={**h, "Connection": "Upgrade", "Upgrade": "websocket"},
    )
    if not REF_PATTERN.fullmatch(ref):
        assert r.status == 400
        r = await c.get(url_for(tid, ref), headers=h)
        # An empty ref is the list URL plus "/": no route, so the router's 404.
        assert r.status == 400 or (ref == "" and r.status == 404)
        assert (pool.connects, pool.channels_opened) == before
        return
    # A valid ref reaches the host: the real remote shell must see exactly one argument.
    # Run the very command we build, with printf standing in for the docker binary.
    line = commands.inspect(False, ref)
    assert shlex.split(line) == ["docker", "inspect", "--type", "container", "--", ref]
    echo = "printf '%s\\0'" + line[len("docker") :]
    result = await pool.run(tid, echo)
    assert result.stdout.split(b"\0")[:-1] == [
        b"inspect",
        b"--type",
        b"container",
        b"--",
        ref.encode(),
    ]
    r = await c.get(url_for(tid, ref), headers=h)
    assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_container"
