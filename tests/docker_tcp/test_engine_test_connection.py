"""Test connection (POST /api/docker/hosts/test and /api/docker/hosts/{id}/test): the real
engine's versions over TCP and mutual TLS, worded errors for what fails, 400 naming the
field for settings that cannot work, nothing saved, admins only, no connection left open."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings

from tests.abuse.resources import tcp_connections_to
from tests.testenv import TestEnv

from .conftest import add_engine, engine_body

TIMEOUT = 2.0
TEST = "/api/docker/hosts/test"


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.host_timeout = TIMEOUT
    return archnest_settings


def _server_versions(env: TestEnv) -> tuple[str, str]:
    out = env.docker("version", "-f", "{{.Server.Version}} {{.Server.APIVersion}}")
    engine, api = out.split()
    return engine, api


def _closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def _post(c: TestClient, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    resp = await c.post(path, json=body, headers=headers)
    return resp.status, await resp.json()


async def _no_connection_left(port: int) -> None:
    # The test's client is closed in a finally; its socket is gone within a moment.
    deadline = time.monotonic() + 2
    while tcp_connections_to(port) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert tcp_connections_to(port) == 0


async def test_new_engine_over_tcp_and_mutual_tls_answers_real_versions(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    c, env = archnest_client, testenv_docker
    engine, api = _server_versions(env)
    env.run_container("probe-1")
    tls = env.tls
    for body in (
        {"url": env.docker_tcp_url},  # a name is not needed to test
        {"name": "vm-01", "url": env.docker_tcp_url},
        {
            "url": env.docker_tls_url,
            "tls": {"ca": tls.ca_pem, "cert": tls.cert_pem, "key": tls.key_pem},
        },
    ):
        status, facts = await _post(c, TEST, body, admin_headers)
        assert status == 200, facts
        assert facts["engine_version"] == engine
        assert facts["api_version"] == api
        assert facts["os"] == "linux" and facts["arch"]
        assert facts["containers"] >= 1 and facts["running"] >= 1
        assert "PRIVATE KEY" not in str(facts)
    # Nothing was saved, and no connection stays open to either listener.
    assert await (await c.get("/api/docker/hosts", headers=admin_headers)).json() == []
    await _no_connection_left(env.docker_tcp_port)
    await _no_connection_left(env.docker_tls_port)

    # Server verification off (a lab engine): no CA needed, the client identity still is.
    body = {
        "url": env.docker_tls_url,
        "tls": {"cert": tls.cert_pem, "key": tls.key_pem, "verify": False},
    }
    status, facts = await _post(c, TEST, body, admin_headers)
    assert status == 200, facts
    assert facts["engine_version"] == engine


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("wrong_ca", 502, "not signed by the configured CA"),
        ("rogue_client_cert", 502, "client certificate"),
        ("expired_client_cert", 502, "expired"),
        ("no_client_cert", 502, "client certificate"),
        ("refused", 502, "connection refused"),
        ("no_socket", 502, "no such socket"),
        ("plain_port_as_https", 502, "does not speak TLS"),
        ("tls_port_as_tcp", 502, "speaks TLS on this port"),
        ("silent", 504, "engine at tcp://127.0.0.1:"),
    ],
)
async def test_what_fails_is_said_in_words(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv_docker: TestEnv,
    silent_port: int,
    case: str,
    status: int,
    words: str,
) -> None:
    env = testenv_docker
    good, rogue, expired = env.tls, env.tls_rogue, env.tls_expired
    tls_port = env.docker_tls_url.split("://", 1)[1]
    body = {
        "wrong_ca": {
            "url": env.docker_tls_url,
            "tls": {"ca": rogue.ca_pem, "cert": good.cert_pem, "key": good.key_pem},
        },
        "rogue_client_cert": {
            "url": env.docker_tls_url,
            "tls": {"ca": good.ca_pem, "cert": rogue.cert_pem, "key": rogue.key_pem},
        },
        "expired_client_cert": {
            "url": env.docker_tls_url,
            "tls": {"ca": good.ca_pem, "cert": expired.cert_pem, "key": expired.key_pem},
        },
        "no_client_cert": {"url": env.docker_tls_url, "tls": {"ca": good.ca_pem}},
        "refused": {"url": f"tcp://127.0.0.1:{_closed_port()}"},
        "no_socket": {"url": f"unix://{env.tmpdir}/missing-{case}.sock"},
        "plain_port_as_https": {
            "url": "https://" + env.docker_tcp_url.split("://", 1)[1],
            "tls": {"ca": good.ca_pem},
        },
        "tls_port_as_tcp": {"url": f"tcp://{tls_port}"},
        "silent": {"url": f"tcp://127.0.0.1:{silent_port}"},
    }[case]
    started = time.monotonic()
    code, answer = await _post(archnest_client, TEST, body, admin_headers)
    assert time.monotonic() - started < TIMEOUT + 3  # bounded by the per-host timeout
    assert code == status, answer
    error = answer["error"]
    assert words in error["message"], error
    assert error["code"] in {"engine_unreachable", "engine_error", "host_timeout"}
    assert "PRIVATE KEY" not in error["message"]


@pytest.mark.parametrize(
    ("tls", "url", "field", "code"),
    [
        ({"ca": "not a pem"}, "https", "tls.ca", "bad_request"),
        ({"ca": "é"}, "https", "tls.ca", "invalid_body"),  # not PEM text: the schema says so
        ({"cert": "garbage", "key": "garbage"}, "https", "tls.cert", "bad_request"),
        ({"cert": "GOOD_CERT"}, "https", "tls.key", "bad_request"),  # a key is missing
        ({"key": "GOOD_KEY"}, "https", "tls.cert", "bad_request"),
        ({"cert": "GOOD_CERT", "key": "ROGUE_KEY"}, "https", "tls.key", "bad_request"),
        ({"verify": "no"}, "https", "tls.verify", "invalid_body"),
        ({"ca": "GOOD_CA"}, "tcp", "url", "tls_needs_https"),  # tcp:// is plain HTTP
        (None, "http://127.0.0.1:2375", "url", "bad_request"),
        (None, "tcp://127.0.0.1", "url", "bad_request"),
        (None, "unix://relative.sock", "url", "bad_request"),
    ],
)
async def test_settings_that_cannot_work_are_a_400_naming_the_field(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv_docker: TestEnv,
    tls: dict[str, Any] | None,
    url: str,
    field: str,
    code: str,
) -> None:
    env = testenv_docker
    hostport = env.docker_tls_url.split("://", 1)[1]
    pems = {
        "GOOD_CA": env.tls.ca_pem,
        "GOOD_CERT": env.tls.cert_pem,
        "GOOD_KEY": env.tls.key_pem,
        "ROGUE_KEY": env.tls_rogue.key_pem,
    }
    body: dict[str, Any] = {"url": f"{url}://{hostport}" if url in ("https", "tcp") else url}
    if tls is not None:
        body["tls"] = {k: pems.get(v, v) if isinstance(v, str) else v for k, v in tls.items()}
    status, answer = await _post(archnest_client, TEST, body, admin_headers)
    assert status == 400, answer
    assert answer["error"]["field"] == field, answer
    assert answer["error"]["code"] == code, answer
    assert "PRIVATE KEY" not in answer["error"]["message"]

    # The same body saved is refused the same way (one set of checks for both).
    if tls is not None or url.startswith(("http:", "tcp:", "unix:")):
        status, saved = await _post(
            archnest_client, "/api/docker/hosts", {"name": "x", **body}, admin_headers
        )
        assert status == 400 and saved["error"]["field"] == field, saved


async def test_a_saved_engine_is_tested_as_saved_or_with_changes_not_saved(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    c, env = archnest_client, testenv_docker
    engine, _ = _server_versions(env)
    tls_id = await add_engine(c, admin_headers, engine_body(env, "tls", "secure"))
    path = f"/api/docker/hosts/{tls_id}/test"

    for body in ({}, None, {"name": "renamed-for-the-test"}):
        resp = await c.post(path, json=body, headers=admin_headers)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["engine_version"] == engine

    # A change that would break it fails the test and leaves the stored engine as it was.
    rogue_ca = {"tls": {"ca": env.tls_rogue.ca_pem}}
    status, answer = await _post(c, path, rogue_ca, admin_headers)
    assert status == 502 and "not signed by the configured CA" in answer["error"]["message"]
    status, answer = await _post(
        c, path, {"url": f"tcp://127.0.0.1:{_closed_port()}"}, admin_headers
    )
    # tcp:// with the stored TLS material is refused before connecting, naming the url.
    assert status == 400 and answer["error"]["field"] == "url", answer
    status, answer = await _post(
        c,
        path,
        {"url": f"tcp://127.0.0.1:{_closed_port()}", "tls": {"ca": None, "cert": "", "key": None}},
        admin_headers,
    )
    assert status == 502 and "connection refused" in answer["error"]["message"], answer

    resp = await c.get(f"/api/docker/hosts/{tls_id}", headers=admin_headers)
    stored = await resp.json()
    assert stored["name"] == "secure" and stored["url"] == env.docker_tls_url
    assert stored["tls"] == {"verify": True, "has_ca": True, "has_cert": True, "has_key": True}
    resp = await c.get(f"/api/docker/hosts/{tls_id}/containers", headers=admin_headers)
    assert resp.status == 200

    # A body field at fault is named; an unknown engine is a 404.
    status, answer = await _post(c, path, {"tls": {"cert": "garbage"}}, admin_headers)
    assert status == 400 and answer["error"]["field"] == "tls.cert", answer
    status, answer = await _post(c, "/api/docker/hosts/999999/test", {}, admin_headers)
    assert status == 404 and answer["error"]["code"] == "unknown_host"


async def test_only_admins_test_connections(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    c, env = archnest_client, testenv_docker
    engine_id = await add_engine(c, admin_headers, engine_body(env, "tcp"))
    for path in (TEST, f"/api/docker/hosts/{engine_id}/test"):
        body = {"url": env.docker_tcp_url}
        assert (await c.post(path, json=body)).status == 401
        resp = await c.post(path, json=body, headers=viewer_headers)
        assert resp.status == 403, await resp.text()
