"""Engine configuration: CRUD, roles, secrets never shown and encrypted at rest, the
local socket added once and its removal remembered."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from archnest import DB_KEY
from sqlalchemy import text

from tests.testenv import TestEnv

from .conftest import add_engine, engine_body


async def test_crud_roles_and_validation(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> None:
    c = archnest_client
    body = engine_body(testenv_docker, "tcp", "edge")
    assert (await c.post("/api/docker/hosts", json=body)).status == 401
    assert (await c.post("/api/docker/hosts", json=body, headers=viewer_headers)).status == 403
    assert (await c.get("/api/docker/hosts")).status == 401

    engine_id = await add_engine(c, admin_headers, body)
    resp = await c.post("/api/docker/hosts", json=body, headers=admin_headers)
    assert resp.status == 409  # names are unique

    for bad in (
        {"name": "x", "url": "http://127.0.0.1:2375"},
        {"name": "x", "url": "unix://relative.sock"},
        {"name": "x", "url": "tcp://127.0.0.1"},
        {"name": "", "url": "tcp://127.0.0.1:2375"},
        {"name": "x", "url": "tcp://127.0.0.1:2375", "tls": {"cert": "x"}},
        {"name": "x", "url": "https://127.0.0.1:2376", "tls": {"ca": "not a pem"}},
        {"name": "x", "url": "tcp://127.0.0.1:2375", "shell": "rm -rf /"},
    ):
        resp = await c.post("/api/docker/hosts", json=bad, headers=admin_headers)
        assert resp.status == 400, bad
    resp = await c.post(
        "/api/docker/hosts", data=b"{not json", headers=admin_headers | {"Content-Type": "x"}
    )
    assert resp.status == 400

    patch = {"name": "edge-renamed"}
    url = f"/api/docker/hosts/{engine_id}"
    assert (await c.patch(url, json=patch, headers=viewer_headers)).status == 403
    assert (await c.patch(url, json=patch)).status == 401
    resp = await c.patch(url, json=patch, headers=admin_headers)
    assert resp.status == 200
    assert (await resp.json())["name"] == "edge-renamed"
    resp = await c.get("/api/docker/hosts", headers=viewer_headers)
    assert [e["name"] for e in await resp.json()] == ["edge-renamed"]

    # Pointing an engine elsewhere takes effect at once (the pooled client is replaced).
    resp = await c.get(f"{url}/info", headers=viewer_headers)
    assert resp.status == 200
    info = await resp.json()
    assert info["api_version"] and info["engine_version"]
    assert isinstance(info["containers"], int)
    await c.patch(url, json={"url": "tcp://127.0.0.1:1"}, headers=admin_headers)
    assert (await c.get(f"{url}/info", headers=viewer_headers)).status == 502

    assert (await c.delete(url, headers=viewer_headers)).status == 403
    assert (await c.delete(url, headers=admin_headers)).status == 200
    assert (await c.get(url, headers=admin_headers)).status == 404
    assert (await c.get(f"{url}/containers", headers=admin_headers)).status == 404
    assert (await c.get("/api/docker/hosts/abc/containers", headers=admin_headers)).status == 404


async def test_tls_secrets_are_never_returned_and_encrypted_at_rest(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    c = archnest_client
    tls = testenv_docker.tls
    resp = await c.post(
        "/api/docker/hosts", json=engine_body(testenv_docker, "tls"), headers=admin_headers
    )
    created = await resp.json()
    key_body = tls.key_pem.split("-----")[2].strip()[:40]
    cert_body = tls.cert_pem.split("-----")[2].strip()[:40]
    assert created["tls"] == {"verify": True, "has_ca": True, "has_cert": True, "has_key": True}
    for path in ("/api/docker/hosts", f"/api/docker/hosts/{created['id']}"):
        page = await (await c.get(path, headers=admin_headers)).text()
        assert key_body not in page and cert_body not in page and "PRIVATE KEY" not in page

    async with c.app[DB_KEY].engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM docker_tcp_engines"))).all()
    dump = repr(rows)
    assert key_body not in dump and cert_body not in dump and "PRIVATE KEY" not in dump

    # A PATCH without tls keeps the stored identity; the engine still answers.
    resp = await c.patch(
        f"/api/docker/hosts/{created['id']}", json={"name": "tls-2"}, headers=admin_headers
    )
    assert (await resp.json())["tls"]["has_key"] is True
    resp = await c.get(f"/api/docker/hosts/{created['id']}/containers", headers=admin_headers)
    assert resp.status == 200


async def test_tcp_url_with_tls_material_is_refused(
    archnest_client: TestClient, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    """tcp:// is plain HTTP: with a CA, certificate or key it is a 400 naming https://,
    on POST and on PATCH, and a row stored that way earlier is refused at use."""
    c, env = archnest_client, testenv_docker
    tls_hostport = env.docker_tls_url.split("://", 1)[1]
    tls_body = engine_body(env, "tls", "secure")
    material = tls_body["tls"]

    for tls in (material, {"ca": material["ca"]}, {"cert": material["cert"]}):
        bad = {"name": "leaky", "url": f"tcp://{tls_hostport}", "tls": tls}
        resp = await c.post("/api/docker/hosts", json=bad, headers=admin_headers)
        assert resp.status == 400, tls
        error = (await resp.json())["error"]
        assert error["code"] == "tls_needs_https"
        assert f"https://{tls_hostport}" in error["message"]
    resp = await c.get("/api/docker/hosts", headers=admin_headers)
    assert await resp.json() == []  # nothing was stored

    secure_id = await add_engine(c, admin_headers, tls_body)
    plain_id = await add_engine(c, admin_headers, engine_body(env, "tcp", "plain"))
    for engine_id, patch in (
        (secure_id, {"url": f"tcp://{tls_hostport}"}),  # the url alone
        (plain_id, {"tls": {"ca": material["ca"]}}),  # the tls alone
    ):
        resp = await c.patch(f"/api/docker/hosts/{engine_id}", json=patch, headers=admin_headers)
        assert resp.status == 400, patch
        assert (await resp.json())["error"]["code"] == "tls_needs_https"
    # Both rows are unchanged and still answer over what they were.
    resp = await c.get("/api/docker/hosts", headers=admin_headers)
    by_id = {e["id"]: e for e in await resp.json()}
    assert by_id[secure_id]["url"] == env.docker_tls_url and by_id[secure_id]["tls"]["has_key"]
    assert by_id[plain_id]["url"] == env.docker_tcp_url and not by_id[plain_id]["tls"]["has_ca"]
    for engine_id in (secure_id, plain_id):
        resp = await c.get(f"/api/docker/hosts/{engine_id}/containers", headers=admin_headers)
        assert resp.status == 200

    # Dropping the material along with the switch to tcp:// is a deliberate choice: allowed.
    cleared = {"url": env.docker_tcp_url, "tls": {"ca": None, "cert": None, "key": None}}
    resp = await c.patch(f"/api/docker/hosts/{secure_id}", json=cleared, headers=admin_headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["tls"]["has_key"] is False

    # A row written before this check (tcp:// to the plain port, TLS material stored)
    # used to work over plain HTTP in silence; now every call says what to fix.
    await c.patch(f"/api/docker/hosts/{secure_id}", json=tls_body, headers=admin_headers)
    async with c.app[DB_KEY].engine.begin() as conn:
        await conn.execute(
            text("UPDATE docker_tcp_engines SET url = :url WHERE id = :id"),
            {"url": env.docker_tcp_url, "id": secure_id},
        )
    resp = await c.get(f"/api/docker/hosts/{secure_id}/containers", headers=admin_headers)
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "engine_config" and "https://" in error["message"]
