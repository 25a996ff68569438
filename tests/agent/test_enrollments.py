"""Per-host agent tokens: enrollment routes, the ingest's host check, revocation and
re-issue, the shared token beside them, and the agent files this server ships."""

from __future__ import annotations

import hashlib
import re
import shlex

from aiohttp.test_utils import TestClient
from archnest.testing import make_user_headers
from archnest_docker_agent.enrollments import ENROLLMENTS_KEY
from sqlalchemy import text

from .conftest import AGENT, ROOT, TOKEN, Restart, post_report
from .payloads import make_report

API = "/api/agents/docker/enrollments"
UNIT = ROOT / "plugins" / "docker_agent" / "files" / "archnest-docker-agent.service"


async def _enroll(client: TestClient, headers: dict[str, str], host: str) -> dict:
    r = await client.post(API, json={"host": host}, headers=headers)
    assert r.status == 201, await r.text()
    return await r.json()


async def _hosts(client: TestClient, headers: dict[str, str]) -> dict[str, dict]:
    r = await client.get("/api/agents/docker/hosts", headers=headers)
    return {h["host"]: h for h in await r.json()}


async def _error(resp, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == code, body
    return body["error"]


async def test_enroll_list_and_report_as_own_host(
    archnest_client: TestClient, admin_headers, viewer_headers
) -> None:
    c = archnest_client
    created = await _enroll(c, admin_headers, "vm-07")
    assert set(created) == {"host", "token", "install_command"}
    token = created["token"]
    assert created["host"] == "vm-07" and re.fullmatch(r"[A-Za-z0-9_-]{40,}", token)
    # The install command fetches this server's script and runs its installer.
    lexer = shlex.shlex(created["install_command"], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    base = str(c.make_url("")).rstrip("/")
    assert f"{base}/agent/archnest-docker-agent.sh" in words
    assert f"ARCHNEST_AGENT_TOKEN={token}" in words and "ARCHNEST_AGENT_HOSTNAME=vm-07" in words
    assert f"ARCHNEST_URL={base}" in words
    assert words[words.index("bash") : words.index("bash") + 3] == ["bash", "$f", "--install"]

    await _error(
        await c.post(API, json={"host": "vm-07"}, headers=admin_headers), 409, "host_enrolled"
    )
    err = await _error(
        await c.post(API, json={"host": "bad host!"}, headers=admin_headers), 400, "invalid_body"
    )
    assert err["field"] == "host"

    # Stored hashed: the database holds the SHA-256, never the token.
    async with c.app[ENROLLMENTS_KEY].engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT host, token_hash FROM docker_agent_enrollments"))
        ).all()
    assert rows == [("vm-07", hashlib.sha256(token.encode()).hexdigest())]

    listed = await (await c.get(API, headers=admin_headers)).json()
    assert [e["host"] for e in listed] == ["vm-07"]
    assert listed[0]["last_report_at"] is None and listed[0]["revoked"] is False
    assert listed[0]["status"] == "never" and listed[0]["created_at"]
    assert token not in str(listed) and "token_hash" not in listed[0]

    r = await post_report(c, make_report("vm-07", 2), token=token)
    assert r.status == 204, await r.text()
    listed = await (await c.get(API, headers=admin_headers)).json()
    hosts = await _hosts(c, viewer_headers)
    assert listed[0]["last_report_at"] == hosts["vm-07"]["last_report_at"] is not None
    assert listed[0]["status"] == "ok"


async def test_per_host_token_may_not_report_another_host(
    archnest_client: TestClient, admin_headers, viewer_headers
) -> None:
    c = archnest_client
    token = (await _enroll(c, admin_headers, "vm-a"))["token"]
    await _enroll(c, admin_headers, "vm-b")
    assert (await post_report(c, make_report("vm-b", 3))).status == 204  # shared token
    before = await _hosts(c, viewer_headers)
    r = await post_report(c, make_report("vm-b", 1), token=token)
    await _error(r, 403, "host_mismatch")
    r = await post_report(c, make_report("vm-new", 1), token=token)
    await _error(r, 403, "host_mismatch")
    after = await _hosts(c, viewer_headers)
    assert after == before and "vm-new" not in after and "vm-a" not in after


async def test_revoke_then_reissue(
    archnest_client: TestClient, admin_headers, viewer_headers
) -> None:
    c = archnest_client
    token = (await _enroll(c, admin_headers, "vm-r"))["token"]
    assert (await post_report(c, make_report("vm-r", 4), token=token)).status == 204
    assert (await post_report(c, make_report("vm-r", 4), token=token)).status == 204  # cached
    kept = (await _hosts(c, viewer_headers))["vm-r"]

    r = await c.delete(f"{API}/vm-r", headers=admin_headers)
    assert r.status == 204
    # At once, although the token was just served from the ingest's cache.
    await _error(await post_report(c, make_report("vm-r", 9), token=token), 401, "bad_agent_token")
    assert (await _hosts(c, viewer_headers))["vm-r"] == kept  # the last report stays
    listed = (await (await c.get(API, headers=admin_headers)).json())[0]
    assert listed["revoked"] is True and listed["status"] == "revoked" and listed["revoked_at"]
    assert (await c.delete(f"{API}/vm-r", headers=admin_headers)).status == 204  # idempotent
    await _error(await c.delete(f"{API}/nobody", headers=admin_headers), 404, "unknown_enrollment")
    await _error(await c.delete(f"{API}/bad%20name", headers=admin_headers), 400, "invalid_host")

    r = await c.post(f"{API}/vm-r/token", headers=admin_headers)
    assert r.status == 200, await r.text()
    again = await r.json()
    assert set(again) == {"host", "token", "install_command"} and again["token"] != token
    assert again["token"] in again["install_command"]
    await _error(await post_report(c, make_report("vm-r", 1), token=token), 401, "bad_agent_token")
    assert (await post_report(c, make_report("vm-r", 5), token=again["token"])).status == 204
    assert (await _hosts(c, viewer_headers))["vm-r"]["container_count"] == 5
    listed = (await (await c.get(API, headers=admin_headers)).json())[0]
    assert listed["revoked"] is False and listed["status"] == "ok"

    # Re-issuing an active token kills the old one too.
    r = await c.post(f"{API}/vm-r/token", headers=admin_headers)
    third = (await r.json())["token"]
    await _error(
        await post_report(c, make_report("vm-r", 1), token=again["token"]), 401, "bad_agent_token"
    )
    assert (await post_report(c, make_report("vm-r", 1), token=third)).status == 204
    await _error(
        await c.post(f"{API}/nobody/token", headers=admin_headers), 404, "unknown_enrollment"
    )

    # A revoked host may be enrolled again with POST (a fresh token).
    assert (await c.delete(f"{API}/vm-r", headers=admin_headers)).status == 204
    fresh = await _enroll(c, admin_headers, "vm-r")
    assert (await post_report(c, make_report("vm-r", 1), token=fresh["token"])).status == 204


async def test_ingest_cache_saves_lookups(archnest_client: TestClient, admin_headers) -> None:
    c = archnest_client
    store = c.app[ENROLLMENTS_KEY]
    token = (await _enroll(c, admin_headers, "vm-fast"))["token"]
    before = store.lookups
    for _ in range(5):
        assert (await post_report(c, make_report("vm-fast", 1), token=token)).status == 204
    assert store.lookups - before == 1
    # The shared token never needs the database.
    before = store.lookups
    assert (await post_report(c, make_report("any-host", 1))).status == 204
    assert store.lookups == before


async def test_shared_token_still_reports_any_host(
    archnest_client: TestClient, admin_headers, viewer_headers
) -> None:
    c = archnest_client
    await _enroll(c, admin_headers, "vm-s")
    for host in ("vm-s", "not-enrolled"):
        r = await post_report(c, make_report(host, 1), token=TOKEN)
        assert r.status == 204, await r.text()
    assert {"vm-s", "not-enrolled"} <= set(await _hosts(c, viewer_headers))
    await _error(await post_report(c, make_report("x", 1), token="wrong"), 401, "bad_agent_token")
    await _error(await post_report(c, make_report("x", 1), token=None), 401, "bad_agent_token")


async def test_without_shared_token_503_until_a_host_is_enrolled(
    restart_app: Restart,
) -> None:
    c = await restart_app(ARCHNEST_AGENT_TOKEN=None)
    admin = await make_user_headers(c, "root2", "admin")
    await _error(await post_report(c, make_report("x", 1), token="t"), 503, "agent_ingest_disabled")
    await _error(
        await post_report(c, make_report("x", 1), token=None), 503, "agent_ingest_disabled"
    )
    token = (await _enroll(c, admin, "vm-only"))["token"]
    assert (await post_report(c, make_report("vm-only", 1), token=token)).status == 204
    await _error(await post_report(c, make_report("x", 1), token=TOKEN), 401, "bad_agent_token")
    # Every enrollment revoked: still set up (401 for the revoked token, not 503).
    assert (await c.delete(f"{API}/vm-only", headers=admin)).status == 204
    await _error(
        await post_report(c, make_report("vm-only", 1), token=token), 401, "bad_agent_token"
    )


async def test_viewer_and_anonymous_get_no_enrollment_route(
    archnest_client: TestClient, admin_headers, viewer_headers
) -> None:
    c = archnest_client
    await _enroll(c, admin_headers, "vm-v")
    calls = [
        ("GET", API, None),
        ("POST", API, {"host": "vm-x"}),
        ("DELETE", f"{API}/vm-v", None),
        ("POST", f"{API}/vm-v/token", None),
        ("POST", "/api/agents/docker/ssh-install", {"target_id": 1}),
        ("GET", "/settings/agents", None),
    ]
    for method, path, body in calls:
        r = await c.request(method, path, json=body, headers=viewer_headers)
        assert r.status == 403, (method, path, r.status)
        r = await c.request(method, path, json=body, headers={"Accept": "application/json"})
        assert r.status == 401, (method, path, r.status)
    listed = await (await c.get(API, headers=admin_headers)).json()
    assert [(e["host"], e["revoked"]) for e in listed] == [("vm-v", False)]


async def test_agent_files_are_public_and_the_packaged_ones(archnest_client: TestClient) -> None:
    c = archnest_client
    r = await c.get("/agent/archnest-docker-agent.sh")
    assert r.status == 200
    assert r.content_type == "text/x-shellscript"
    assert await r.read() == AGENT.read_bytes()
    r = await c.get("/agent/archnest-docker-agent.service")
    assert r.status == 200 and await r.read() == UNIT.read_bytes()
    assert (await c.get("/agent/other.sh")).status in (401, 404)


async def test_ssh_install_validates_before_touching_anything(
    archnest_client: TestClient, admin_headers
) -> None:
    c = archnest_client
    url = "/api/agents/docker/ssh-install"
    bad = [
        ({"target_id": 1, "docker_host": "unix:///x; rm -rf /"}, "docker_host"),
        ({"target_id": 1, "docker_host": "ssh://root@h"}, "docker_host"),
        ({"target_id": 1, "host": "$(reboot)"}, "host"),
        ({"target_id": 1, "interval": 0}, "interval"),
        ({"target_id": "1"}, "target_id"),
        ({"target_id": 2**31}, "target_id"),  # beyond PostgreSQL's INTEGER id
        ({"target_id": 0}, "target_id"),
        ({"target_id": 1, "command": "id"}, "command"),
    ]
    for body, field in bad:
        err = await _error(await c.post(url, json=body, headers=admin_headers), 400, "invalid_body")
        assert err["field"] == field, (body, err)
    err = await _error(
        await c.post(url, json={"target_id": 999}, headers=admin_headers), 404, "unknown_target"
    )
    assert err["field"] == "target_id"
    assert await (await c.get(API, headers=admin_headers)).json() == []
