"""/api/ssh/targets: credentials encrypted at rest and never returned; validation;
roles; jump references."""

from __future__ import annotations

import pytest
from archnest import DB_KEY
from sqlalchemy import text

from .conftest import target_payload


async def test_credentials_encrypted_and_never_returned(
    archnest_client, admin_headers, viewer_headers, testenv
):
    c = archnest_client
    body = target_payload(testenv, testenv.ssh_target, "key-passphrase", docker=True)
    body["password"] = "s3cret-password-xyz"
    r = await c.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["has_private_key"] and created["has_passphrase"] and created["has_password"]
    assert created["host_key_fingerprints"] == [testenv.ssh_target.host_key_fingerprint]
    for view in (
        created,
        (await (await c.get("/api/ssh/targets", headers=viewer_headers)).json())[0],
    ):
        dumped = repr(view)
        for secret in (
            testenv.ssh.encrypted_private_key,
            testenv.ssh.passphrase,
            "s3cret-password-xyz",
        ):
            assert secret.strip()[:40] not in dumped
        assert not {"private_key", "passphrase", "password", "certificate"} & set(view)
    async with c.app[DB_KEY].engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM ssh_targets"))).mappings().one()
    stored = " ".join(str(v) for v in row.values())
    assert testenv.ssh.passphrase not in stored and "s3cret-password-xyz" not in stored
    assert "OPENSSH PRIVATE KEY" not in stored
    assert row["private_key_enc"].startswith("gAAAA")  # a Fernet token


async def test_roles(archnest_client, admin_headers, viewer_headers, testenv):
    body = target_payload(testenv, testenv.ssh_target)
    assert (await archnest_client.post("/api/ssh/targets", json=body)).status == 401
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=viewer_headers)
    assert r.status == 403
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    tid = (await r.json())["id"]
    for method in ("PATCH", "DELETE"):
        r = await archnest_client.request(
            method, f"/api/ssh/targets/{tid}", json={}, headers=viewer_headers
        )
        assert r.status == 403
    r = await archnest_client.post(f"/api/ssh/targets/{tid}/scan-host-key", headers=viewer_headers)
    assert r.status == 403


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"auth": "kerberos"}, 400),
        ({"port": 0}, 400),
        ({"port": "22"}, 400),
        ({"host": "-oProxyCommand=sh"}, 400),
        ({"host": "a b"}, 400),
        ({"username": "root;id"}, 400),
        ({"private_key": "not a key"}, 400),
        ({"private_key": None}, 400),
        ({"auth": "password"}, 400),
        ({"auth": "certificate"}, 400),
        ({"host_keys": ["ssh-ed25519 garbage"]}, 400),
        ({"host_keys": "ssh-ed25519 AAAA"}, 400),
        ({"jump": [999]}, 400),
        ({"jump": ["1"]}, 400),
        ({"docker": "yes"}, 400),
        ({"colour": "blue"}, 400),
    ],
)
async def test_validation(archnest_client, admin_headers, testenv, change, code):
    body = {**target_payload(testenv, testenv.ssh_target), **change}
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == code, await r.text()
    assert (await r.json())["error"]["message"]


async def test_wrong_passphrase_is_400(archnest_client, admin_headers, testenv):
    body = target_payload(testenv, testenv.ssh_target, "key-passphrase", passphrase="wrong")
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == 400


async def test_patch_delete_and_jump_references(archnest_client, admin_headers, testenv):
    c, h = archnest_client, admin_headers
    hop = await (
        await c.post("/api/ssh/targets", json=target_payload(testenv, testenv.ssh_jump1), headers=h)
    ).json()
    body = target_payload(testenv, testenv.ssh_target, "password", jump=[hop["id"]], docker=True)
    t = await (await c.post("/api/ssh/targets", json=body, headers=h)).json()
    assert t["jump"] == [hop["id"]] and t["has_password"] and not t["has_private_key"]
    r = await c.post("/api/ssh/targets", json=body, headers=h)
    assert r.status == 409  # same name
    r = await c.patch(f"/api/ssh/targets/{t['id']}", json={"jump": [t["id"]]}, headers=h)
    assert r.status == 400  # its own hop
    r = await c.delete(f"/api/ssh/targets/{hop['id']}", headers=h)
    assert r.status == 409  # still a jump host of t
    r = await c.patch(
        f"/api/ssh/targets/{t['id']}", json={"jump": [], "sudo": True, "name": "renamed"}, headers=h
    )
    assert r.status == 200
    assert {k: (await r.json())[k] for k in ("jump", "sudo", "name")} == {
        "jump": [],
        "sudo": True,
        "name": "renamed",
    }
    assert (await c.delete(f"/api/ssh/targets/{hop['id']}", headers=h)).status == 200
    assert (await c.get(f"/api/ssh/targets/{hop['id']}", headers=h)).status == 404
    assert (await c.patch("/api/ssh/targets/abc", json={}, headers=h)).status == 404
