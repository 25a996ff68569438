"""Host-key pinning: an unknown or changed key is refused before anything runs; the
admin confirms the scanned key and then it works."""

from __future__ import annotations

import pytest

from tests.testenv import TestEnv


def exists(env: TestEnv, name: str) -> bool:
    return name in env.docker("ps", "-a", "--format", "{{.Names}}").split()


@pytest.mark.parametrize("pinned", ["unknown", "changed"])
async def test_untrusted_key_refused_then_confirmed(
    archnest_client, admin_headers, make_target, testenv_docker, pinned
):
    env = testenv_docker
    env.run_container("victim")
    # "changed": the pinned key belongs to another server (as after a MITM or rebuild).
    keys = [] if pinned == "unknown" else [env.ssh_jump1.host_key]
    t = await make_target(env.ssh_target, "key", docker=True, host_keys=keys)
    c, h = archnest_client, admin_headers
    base = f"/api/docker-ssh/hosts/{t['id']}/containers"

    r = await c.post(base + "/victim/remove?force=1", headers=h)
    body = await r.json()
    assert r.status == 502 and body["error"]["code"] == "host_key_not_trusted"
    msg = body["error"]["message"]
    assert (
        f"host key not trusted: presented ssh-ed25519 {env.ssh_target.host_key_fingerprint}" in msg
    )
    assert "scan-host-key" in msg
    # The command would have removed the container: it is still there, nothing ran.
    assert exists(env, "victim")
    r = await c.get("/api/hosts", headers=h)
    host = next(x for x in await r.json() if x["id"] == f"ssh:{t['id']}")
    assert host["status"] == "error" and "host key not trusted" in host["error"]

    r = await c.post(f"/api/ssh/targets/{t['id']}/scan-host-key", headers=h)
    scanned = await r.json()
    assert r.status == 200
    assert scanned["host_key"] == env.ssh_target.host_key
    assert scanned["fingerprint"] == env.ssh_target.host_key_fingerprint
    assert scanned["trusted"] is False
    # Scanning trusts nothing by itself.
    assert (await c.post(base + "/victim/remove?force=1", headers=h)).status == 502
    assert exists(env, "victim")

    r = await c.patch(
        f"/api/ssh/targets/{t['id']}", json={"host_keys": [scanned["host_key"]]}, headers=h
    )
    assert r.status == 200
    r = await c.post(base + "/victim/remove?force=1", headers=h)
    assert r.status == 200, await r.text()
    assert not exists(env, "victim")


async def test_untrusted_jump_host_refused(
    archnest_client, admin_headers, make_target, testenv_docker
):
    env = testenv_docker
    env.run_container("victim")
    hop = await make_target(env.ssh_jump1, "key", name="hop", host_keys=[env.ssh_jump2.host_key])
    t = await make_target(env.ssh_target, "key", docker=True, jump=[hop["id"]])
    base = f"/api/docker-ssh/hosts/{t['id']}/containers"
    r = await archnest_client.post(base + "/victim/remove?force=1", headers=admin_headers)
    body = await r.json()
    assert r.status == 502 and body["error"]["code"] == "host_key_not_trusted"
    assert env.ssh_jump1.host_key_fingerprint in body["error"]["message"]
    assert exists(env, "victim")
    # The target behind an untrusted hop cannot be scanned either: the hop is pinned too.
    r = await archnest_client.post(
        f"/api/ssh/targets/{t['id']}/scan-host-key", headers=admin_headers
    )
    assert r.status == 502
    # The hop itself can be scanned, confirmed, and then the chain works.
    r = await archnest_client.post(
        f"/api/ssh/targets/{hop['id']}/scan-host-key", headers=admin_headers
    )
    key = (await r.json())["host_key"]
    await archnest_client.patch(
        f"/api/ssh/targets/{hop['id']}", json={"host_keys": [key]}, headers=admin_headers
    )
    r = await archnest_client.post(base + "/victim/remove?force=1", headers=admin_headers)
    assert r.status == 200 and not exists(env, "victim")
