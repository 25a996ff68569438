"""One dead host never breaks the page; HTML escapes everything from hosts; secrets
(TLS keys, secret-looking env values) never leave the server in any shape."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from archnest import DB_KEY, Settings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.agent.payloads import make_report

AGENT_TOKEN = "security-agent-token-0123456789"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = AGENT_TOKEN
    archnest_settings.host_timeout = 3.0
    return archnest_settings


def _self_signed() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "archnest-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


def _hostile_report(host: str = "alive") -> dict:
    report = make_report(host, 2)
    c = report["containers"][0]
    c["Name"] = "/" + XSS
    c["Config"]["Labels"]["evil"] = "<script>alert('label')</script>"
    c["Config"]["Env"] = [
        "PLAIN=<svg onload=alert(2)>",
        "DB_PASSWORD=hunter2-secret",
        "DATABASE_URL=postgres://app:pw-in-url@db/app",
        "Api_Token=tok-secret-value",
    ]
    c["State"]["Error"] = "<b>boom</b>"
    return report


async def _post_report(client, report: dict) -> None:
    resp = await client.post(
        "/api/agents/docker/report",
        json=report,
        headers={"Authorization": f"Bearer {AGENT_TOKEN}"},
    )
    assert resp.status == 204, await resp.text()


async def test_dead_engine_never_breaks_the_page(archnest_client, admin_headers):
    await _post_report(archnest_client, make_report("alive", 3))
    resp = await archnest_client.post(
        "/api/docker/hosts",
        json={"name": "dead <i>engine</i>", "url": "tcp://127.0.0.1:1"},
        headers=admin_headers,
    )
    assert resp.status == 201
    dead = (await resp.json())["host_id"]

    start = time.monotonic()
    resp = await archnest_client.get("/api/hosts", headers=admin_headers)
    assert resp.status == 200
    hosts = {h["id"]: h for h in await resp.json()}
    assert hosts[dead]["status"] == "error" and hosts[dead]["error"]
    assert hosts["agent:alive"]["status"] == "ok"

    resp = await archnest_client.get("/ui/hosts", headers=admin_headers)
    html = await resp.text()
    assert resp.status == 200
    assert "dead &lt;i&gt;engine&lt;/i&gt;" in html and "<i>engine" not in html
    assert 'data-host="agent:alive"' in html

    resp = await archnest_client.get(f"/ui/hosts/{dead}/containers", headers=admin_headers)
    assert resp.status == 200
    assert "host-failure" in await resp.text()
    resp = await archnest_client.get(f"/ui/hosts/{dead}/containers/web", headers=admin_headers)
    assert resp.status == 200
    assert "host-failure" in await resp.text()
    resp = await archnest_client.get("/ui/hosts/agent:alive/containers", headers=admin_headers)
    assert resp.status == 200 and "svc-000" in await resp.text()

    resp = await archnest_client.get(f"/api/hosts/{dead}/containers", headers=admin_headers)
    assert resp.status in (502, 504)
    assert set((await resp.json())["error"]) == {"code", "message"}
    # A refused connection answers at once: nothing waited for the per-host timeout.
    assert time.monotonic() - start < 3.0


async def test_host_data_is_escaped_in_every_partial(archnest_client, viewer_headers):
    report = _hostile_report()
    await _post_report(archnest_client, report)
    cid = report["containers"][0]["Id"]
    pages = [
        await archnest_client.get(f"/ui/hosts/agent:alive/containers{q}", headers=viewer_headers)
        for q in ("", "?all=1")
    ]
    pages.append(
        await archnest_client.get(f"/ui/hosts/agent:alive/containers/{cid}", headers=viewer_headers)
    )
    for resp in pages:
        assert resp.status == 200
        html = await resp.text()
        assert "<img src=x" not in html
        assert "<script>alert" not in html
        assert "<svg onload" not in html
        assert "<b>boom" not in html
    detail = await pages[-1].text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in detail
    assert "&lt;script&gt;alert(" in detail
    # The list falls back to the id for a name that is not a valid ref.
    assert f'data-ref="{cid[:64]}"' in await pages[0].text()


async def test_secret_env_is_masked_on_every_path(archnest_client, admin_headers):
    report = _hostile_report()
    await _post_report(archnest_client, report)
    cid = report["containers"][0]["Id"]
    urls = [
        f"/api/hosts/agent:alive/containers/{cid}",
        f"/api/agents/docker/hosts/alive/containers/{cid}",
        "/api/hosts/agent:alive/containers?all=1",
        "/api/agents/docker/hosts/alive",
        f"/ui/hosts/agent:alive/containers/{cid}",
    ]
    for url in urls:
        resp = await archnest_client.get(url, headers=admin_headers)
        assert resp.status == 200, url
        text = await resp.text()
        for secret in ("hunter2-secret", "pw-in-url", "tok-secret-value"):
            assert secret not in text, (url, secret)
    detail = await (
        await archnest_client.get(f"/api/hosts/agent:alive/containers/{cid}", headers=admin_headers)
    ).json()
    env = {e["name"]: e for e in detail["env"]}
    assert env["PLAIN"] == {"name": "PLAIN", "value": "<svg onload=alert(2)>", "masked": False}
    for name in ("DB_PASSWORD", "DATABASE_URL", "Api_Token"):
        assert env[name] == {"name": name, "value": "****", "masked": True}
    # Nothing secret is stored either: the server masked before saving.
    from archnest_docker_agent.source import STORE_KEY

    row = await archnest_client.app[STORE_KEY].report("alive")
    assert "hunter2-secret" not in row["containers_json"]


async def test_tls_key_never_leaves_the_server(archnest_client, admin_headers, caplog):
    caplog.set_level(logging.DEBUG)
    cert_pem, key_pem = _self_signed()
    key_body = key_pem.splitlines()[1]
    resp = await archnest_client.post(
        "/api/docker/hosts",
        json={
            "name": "tls-engine",
            "url": "https://127.0.0.1:1",
            "tls": {"ca": cert_pem, "cert": cert_pem, "key": key_pem, "verify": True},
        },
        headers=admin_headers,
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["tls"] == {"verify": True, "has_ca": True, "has_cert": True, "has_key": True}
    engine_id, host_id = created["id"], created["host_id"]
    seen = [await resp.text()]
    for url in (
        "/api/docker/hosts",
        f"/api/docker/hosts/{engine_id}",
        f"/api/docker/hosts/{engine_id}/info",
        f"/api/docker/hosts/{engine_id}/containers",
        "/api/hosts",
        "/api/plugins",
        "/ui/hosts",
        f"/ui/hosts/{host_id}/containers",
        "/containers",
    ):
        r = await archnest_client.get(url, headers=admin_headers)
        assert r.status < 500 or r.status in (502, 504), url
        seen.append(await r.text())
    r = await archnest_client.patch(
        f"/api/docker/hosts/{engine_id}", json={"name": "tls-engine-2"}, headers=admin_headers
    )
    assert r.status == 200
    seen.append(await r.text())
    for text in seen:
        assert "PRIVATE KEY" not in text and key_body not in text
    for record in caplog.records:
        assert key_body not in record.getMessage() and "PRIVATE KEY" not in record.getMessage()
    # At rest: encrypted.
    from archnest_docker_tcp.models import DockerEngine

    async with archnest_client.app[DB_KEY].session() as s:
        row = await s.get(DockerEngine, engine_id)
    assert row is not None and row.tls_key_enc and "PRIVATE KEY" not in row.tls_key_enc
    assert key_body not in row.tls_key_enc


@pytest.mark.parametrize(
    "url", ["tcp://user:secret-pw@127.0.0.1:2375", "https://u:secret-pw@127.0.0.1:2376"]
)
async def test_engine_url_with_credentials_is_refused(archnest_client, admin_headers, url):
    # They would be stored in clear, listed to every viewer and quoted in error messages.
    resp = await archnest_client.post(
        "/api/docker/hosts", json={"name": "creds", "url": url}, headers=admin_headers
    )
    assert resp.status == 400
    assert "secret-pw" not in await resp.text()
