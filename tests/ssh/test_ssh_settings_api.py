"""What the SSH targets page needs from the API: scanning a host before its target is
saved (directly and through a pinned jump host), the pinned/matches flags, connection
tests of saved and unsaved targets against the real sshd, worded refusals, and the
plugins' field descriptions."""

from __future__ import annotations

import pytest

from tests.testenv import TestEnv

from .conftest import target_payload

SCAN = "/api/ssh/targets/scan-host-key"
TEST = "/api/ssh/targets/test"


async def test_scan_unsaved_direct_and_through_a_jump(
    archnest_client, admin_headers, make_target, testenv: TestEnv
):
    c, h, env = archnest_client, admin_headers, testenv
    r = await c.post(
        SCAN, json={"host": env.ssh_target.host, "port": env.ssh_target.port}, headers=h
    )
    assert r.status == 200, await r.text()
    got = await r.json()
    assert got["host_key"] == env.ssh_target.host_key
    assert got["fingerprint"] == env.ssh_target.host_key_fingerprint
    assert got["algorithm"] == "ssh-ed25519"
    assert got["matches"] is False and got["pinned"] == []

    # Through jump1 (pinned), compared with a wrong pinned key: old and new to show.
    hop = await make_target(env.ssh_jump1, "key", name="hop1")
    body = {
        "host": env.ssh_target.host,
        "port": env.ssh_target.port,
        "jump": [hop["id"]],
        "host_keys": [env.ssh_jump2.host_key],
    }
    r = await c.post(SCAN, json=body, headers=h)
    assert r.status == 200, await r.text()
    got = await r.json()
    assert got["fingerprint"] == env.ssh_target.host_key_fingerprint
    assert got["matches"] is False
    assert got["pinned"] == [env.ssh_jump2.host_key_fingerprint]
    r = await c.post(SCAN, json={**body, "host_keys": [env.ssh_target.host_key]}, headers=h)
    assert (await r.json())["matches"] is True

    # A hop whose own key is not the pinned one: nothing is scanned through it.
    bad_hop = await make_target(
        env.ssh_jump1, "key", name="bad-hop", host_keys=[env.ssh_jump2.host_key]
    )
    r = await c.post(SCAN, json={**body, "jump": [bad_hop["id"]]}, headers=h)
    err = (await r.json())["error"]
    assert r.status == 409 and err["code"] == "host_key_changed"
    assert err["field"] == "jump.0"
    assert err["presented"] == env.ssh_jump1.host_key_fingerprint
    assert err["pinned"] == [env.ssh_jump2.host_key_fingerprint]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"host": "-oProxyCommand=x"}, 400, "host"),
        ({"host": "127.0.0.1", "port": 0}, 400, "port"),
        ({"host": "127.0.0.1", "jump": [999999]}, 400, "jump"),
        ({"host": "127.0.0.1", "host_keys": ["not a key"]}, 400, "host_keys"),
        ({"host": "127.0.0.1", "shell": "x"}, 400, None),
    ],
)
async def test_scan_unsaved_bad_input(archnest_client, admin_headers, body, status, field):
    r = await archnest_client.post(SCAN, json=body, headers=admin_headers)
    assert r.status == status, await r.text()
    err = (await r.json())["error"]
    if field:
        assert err["field"] == field


async def test_scan_saved_says_whether_the_key_matches(
    archnest_client, admin_headers, make_target, testenv
):
    env = testenv
    t = await make_target(env.ssh_target, "key", host_keys=[env.ssh_jump1.host_key])
    r = await archnest_client.post(
        f"/api/ssh/targets/{t['id']}/scan-host-key", headers=admin_headers
    )
    got = await r.json()
    assert r.status == 200
    assert got["fingerprint"] == env.ssh_target.host_key_fingerprint
    assert got["matches"] is False and got["trusted"] is False
    assert got["pinned"] == [env.ssh_jump1.host_key_fingerprint]


@pytest.mark.parametrize("auth", ["key", "key-passphrase", "password", "certificate"])
async def test_saved_target_tests_ok(archnest_client, admin_headers, make_target, testenv, auth):
    t = await make_target(testenv.ssh_target, auth)
    r = await archnest_client.post(f"/api/ssh/targets/{t['id']}/test", headers=admin_headers)
    assert r.status == 200, await r.text()
    got = await r.json()
    assert got["ok"] is True and got["server_version"].startswith("SSH-2.0-OpenSSH")
    assert got["fingerprint"] == testenv.ssh_target.host_key_fingerprint
    assert got["hops"] == 0


async def test_tests_through_two_jumps_saved_and_unsaved(
    archnest_client, admin_headers, chain_target, make_target, testenv
):
    c, h, env = archnest_client, admin_headers, testenv
    t = await chain_target(2, "certificate")
    r = await c.post(f"/api/ssh/targets/{t['id']}/test", headers=h)
    assert r.status == 200, await r.text()
    assert (await r.json())["hops"] == 2
    # Nothing saved: the same target described in the body, through the same hops.
    body = target_payload(env, env.ssh_target, "password", jump=t["jump"])
    before = await (await c.get("/api/ssh/targets", headers=h)).json()
    r = await c.post(TEST, json=body, headers=h)
    assert r.status == 200, await r.text()
    assert (await r.json())["hops"] == 2
    assert await (await c.get("/api/ssh/targets", headers=h)).json() == before


async def test_unsaved_changes_of_a_saved_target_use_its_stored_credentials(
    archnest_client, admin_headers, make_target, testenv
):
    c, h, env = archnest_client, admin_headers, testenv
    t = await make_target(env.ssh_target, "password")
    # The edit form sends no secret (kept); the stored password logs in.
    r = await c.post(TEST, json={"base": t["id"], "port": env.ssh_target.port}, headers=h)
    assert r.status == 200, await r.text()
    # A typed wrong password is tried (and refused), and is not saved.
    r = await c.post(TEST, json={"base": t["id"], "password": "wrong-password"}, headers=h)
    err = (await r.json())["error"]
    assert r.status == 502 and err["code"] == "ssh_auth_failed" and err["field"] == "password"
    r = await c.post(f"/api/ssh/targets/{t['id']}/test", headers=h)
    assert r.status == 200, await r.text()
    # The same on the target's own route: a PATCH body tried, not saved.
    own = f"/api/ssh/targets/{t['id']}/test"
    r = await c.post(own, json={"password": "wrong-password"}, headers=h)
    assert r.status == 502 and (await r.json())["error"]["field"] == "password"
    r = await c.post(own, json={"host_keys": [env.ssh_jump2.host_key]}, headers=h)
    assert r.status == 409 and (await r.json())["error"]["code"] == "host_key_changed"
    assert (await c.post(own, json={}, headers=h)).status == 200
    assert (await c.post(own, headers=h)).status == 200
    r = await c.post("/api/ssh/targets/999999/test", json={"port": 22}, headers=h)
    assert r.status == 404


@pytest.mark.parametrize("base", [0, -1, 2**31, 1009186724607])
async def test_base_outside_the_id_column_is_a_400(archnest_client, admin_headers, base):
    # PostgreSQL's INTEGER column would fail the lookup of a larger id (a 500 once).
    r = await archnest_client.post(TEST, json={"base": base}, headers=admin_headers)
    assert r.status == 400, await r.text()
    assert (await r.json())["error"]["field"] == "base"


async def test_changed_key_is_refused_with_both_fingerprints_and_pool_untouched(
    archnest_app, archnest_client, admin_headers, make_target, testenv
):
    from archnest.ssh import SSH_POOL_KEY

    c, h, env = archnest_client, admin_headers, testenv
    t = await make_target(env.ssh_target, "key")
    pool = archnest_app[SSH_POOL_KEY]
    await pool.run(t["id"], "true")
    info = pool.connection_info(t["id"])
    assert info is not None
    # Another server's key pinned (as after a MITM or a rebuild), via the API.
    r = await c.post(
        TEST,
        json={"base": t["id"], "host_keys": [env.ssh_jump1.host_key]},
        headers=h,
    )
    err = (await r.json())["error"]
    assert r.status == 409 and err["code"] == "host_key_changed"
    assert err["field"] == "host_keys"
    assert err["presented"] == env.ssh_target.host_key_fingerprint
    assert err["pinned"] == [env.ssh_jump1.host_key_fingerprint]
    assert env.ssh_target.host_key_fingerprint in err["message"]
    assert env.ssh_jump1.host_key_fingerprint in err["message"]
    # The failed test did not touch the pooled connection of the saved target.
    assert pool.connection_info(t["id"]) == info
    assert (await pool.run(t["id"], "true")).ok

    # Saved with the wrong key: the saved test refuses the same way.
    r = await c.patch(
        f"/api/ssh/targets/{t['id']}", json={"host_keys": [env.ssh_jump1.host_key]}, headers=h
    )
    assert r.status == 200
    r = await c.post(f"/api/ssh/targets/{t['id']}/test", headers=h)
    assert r.status == 409 and (await r.json())["error"]["code"] == "host_key_changed"
    # Nothing pinned at all is its own worded refusal.
    r = await c.post(TEST, json={"base": t["id"], "host_keys": []}, headers=h)
    assert r.status == 409 and (await r.json())["error"]["code"] == "host_key_not_pinned"


async def test_worded_errors_refused_auth_and_hop(
    archnest_client, admin_headers, make_target, testenv
):
    c, h, env = archnest_client, admin_headers, testenv
    # A port nobody listens on (the sshd's port + 0 is taken; find a closed one).
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    body = target_payload(env, env.ssh_target, "key", port=closed)
    r = await c.post(TEST, json=body, headers=h)
    err = (await r.json())["error"]
    assert r.status == 502 and err["code"] == "ssh_refused" and err["field"] == "port"

    body = target_payload(env, env.ssh_target, "key", private_key=env.ssh.cert_private_key)
    r = await c.post(TEST, json=body, headers=h)
    err = (await r.json())["error"]
    assert r.status == 502 and err["code"] == "ssh_auth_failed"
    assert err["field"] == "private_key"

    hop = await make_target(env.ssh_jump1, "password", name="hop-wrong", password="nope-nope")
    body = target_payload(env, env.ssh_target, "key", jump=[hop["id"]])
    r = await c.post(TEST, json=body, headers=h)
    err = (await r.json())["error"]
    assert r.status == 502 and err["code"] == "ssh_auth_failed" and err["field"] == "jump.0"
    assert "jump host hop-wrong" in err["message"]

    r = await c.post(TEST, json={"host": env.ssh_target.host}, headers=h)
    err = (await r.json())["error"]
    assert r.status == 400 and err["field"] == "username"


async def test_target_fields_describe_plugin_fields(archnest_client, viewer_headers):
    r = await archnest_client.get("/api/ssh/target-fields", headers=viewer_headers)
    assert r.status == 200
    fields = {f["name"]: f for f in await r.json()}
    assert fields["docker"]["type"] == "boolean" and fields["docker"]["default"] is False
    assert fields["docker"]["title"]


async def test_viewer_cannot_scan_test_or_open_the_page(
    archnest_client, viewer_headers, make_target, testenv
):
    t = await make_target(testenv.ssh_target, "key")
    c, h = archnest_client, viewer_headers
    body = {"host": testenv.ssh_target.host, "port": testenv.ssh_target.port}
    assert (await c.post(SCAN, json=body, headers=h)).status == 403
    assert (await c.post(TEST, json=body, headers=h)).status == 403
    assert (await c.post(f"/api/ssh/targets/{t['id']}/test", headers=h)).status == 403
    assert (await c.post(f"/api/ssh/targets/{t['id']}/scan-host-key", headers=h)).status == 403
    assert (await c.get("/settings/ssh", headers=h)).status == 403


async def test_secrets_never_in_any_answer(archnest_client, admin_headers, make_target, testenv):
    t = await make_target(testenv.ssh_target, "key-passphrase")
    c, h = archnest_client, admin_headers
    answers = [
        await (await c.get("/api/ssh/targets", headers=h)).text(),
        await (await c.post(f"/api/ssh/targets/{t['id']}/test", headers=h)).text(),
        await (await c.post(TEST, json={"base": t["id"]}, headers=h)).text(),
    ]
    key_body = testenv.ssh.encrypted_private_key.splitlines()[1]
    for text in answers:
        assert testenv.ssh.passphrase not in text and key_body not in text
