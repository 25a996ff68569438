"""Channels, rules and the alert list over HTTP: who may do what, validation, secrets
that never come back, the audit trail, and test notices to a real local receiver
(webhook, signed; Apprise's json:// target)."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from archnest.alert_store import alert_channels
from archnest.keys import DB_KEY

from tests.alerts.conftest import SECRET, Receiver, add_channel, add_rule


async def test_channels_keep_their_secrets(
    archnest_client: TestClient, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    client, h = archnest_client, admin_headers
    hook = await add_channel(client, h, receiver)
    token_url = f"json://127.0.0.1:{receiver.port}/apprise-path?token=very-secret-token"
    resp = await client.post(
        "/api/alerts/channels", json={"name": "ap", "kind": "apprise", "url": token_url}, headers=h
    )
    assert resp.status == 201, await resp.text()
    apprise_view = await resp.json()
    assert apprise_view["url"] == "json://****" and apprise_view["secret_set"] is False

    resp = await client.get("/api/alerts/channels", headers=h)
    listed = await resp.json()
    text = await resp.text()
    assert SECRET not in text and "very-secret-token" not in text
    by_id = {c["id"]: c for c in listed}
    assert by_id[hook]["secret_set"] is True and by_id[hook]["url"] == receiver.url()
    assert "secret" not in by_id[hook]

    # Stored encrypted: neither the secret nor the Apprise URL is in the row in the clear.
    async with client.app[DB_KEY].engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(sa.select(alert_channels))]
    dump = repr(rows)
    assert SECRET not in dump and "very-secret-token" not in dump
    assert all(r["secret_encrypted"] or r["kind"] == "apprise" for r in rows)

    # secret: null removes it; an absent secret stays.
    resp = await client.patch(f"/api/alerts/channels/{hook}", json={"name": "renamed"}, headers=h)
    assert (await resp.json())["secret_set"] is True
    resp = await client.patch(f"/api/alerts/channels/{hook}", json={"secret": None}, headers=h)
    assert resp.status == 200 and (await resp.json())["secret_set"] is False


async def test_channel_validation(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    client, h = archnest_client, admin_headers
    for body in (
        {"name": "x", "kind": "webhook", "url": "ftp://127.0.0.1/x"},
        {"name": "x", "kind": "webhook", "url": "file:///etc/passwd"},
        {"name": "x", "kind": "webhook", "url": "http://"},
        {"name": "x", "kind": "apprise", "url": "not a url at all"},
    ):
        resp = await client.post("/api/alerts/channels", json=body, headers=h)
        assert resp.status == 400, (body, await resp.text())
        assert (await resp.json())["error"]["field"] == "url"
    resp = await client.post(
        "/api/alerts/channels", json={"name": "x", "kind": "sms", "url": "http://a"}, headers=h
    )
    assert resp.status == 400
    resp = await client.patch("/api/alerts/channels/999", json={"name": "y"}, headers=h)
    assert resp.status == 404


async def test_rules_crud_snooze_and_validation(
    archnest_client: TestClient, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    client, h = archnest_client, admin_headers
    channel = await add_channel(client, h, receiver)
    for bad, field in (
        ({"name": "c", "kind": "cpu_above"}, "threshold"),
        ({"name": "r", "kind": "restart_loop", "threshold": 3}, "for_seconds"),
        ({"name": "u", "kind": "unhealthy", "channels": [4242]}, "channels"),
        ({"name": " ", "kind": "unhealthy"}, "name"),
    ):
        resp = await client.post("/api/alerts/rules", json=bad, headers=h)
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["field"] == field, await resp.text()

    rule = await add_rule(
        client,
        h,
        name="web exits",
        kind="container_exited",
        scope={"hosts": ["docker:1"], "labels": {"team": "web"}, "project": "shop"},
        channels=[channel],
    )
    assert rule["scope"] == {"hosts": ["docker:1"], "labels": {"team": "web"}, "project": "shop"}
    assert rule["channels"] == [channel] and rule["snoozed_until"] is None

    resp = await client.patch(
        f"/api/alerts/rules/{rule['id']}", json={"kind": "mem_above", "threshold": 80}, headers=h
    )
    assert resp.status == 200, await resp.text()
    changed = await resp.json()
    assert changed["kind"] == "mem_above" and changed["threshold"] == 80
    assert changed["scope"]["project"] == "shop"

    resp = await client.post(
        f"/api/alerts/rules/{rule['id']}/snooze", json={"minutes": 30}, headers=h
    )
    assert resp.status == 200 and (await resp.json())["snoozed_until"] is not None
    resp = await client.post(
        f"/api/alerts/rules/{rule['id']}/snooze", json={"minutes": 0}, headers=h
    )
    assert (await resp.json())["snoozed_until"] is None

    # Removing the channel takes it out of the rule.
    resp = await client.delete(f"/api/alerts/channels/{channel}", headers=h)
    assert resp.status == 200
    rules = await (await client.get("/api/alerts/rules", headers=h)).json()
    assert rules[0]["channels"] == []

    resp = await client.delete(f"/api/alerts/rules/{rule['id']}", headers=h)
    assert resp.status == 200
    assert await (await client.get("/api/alerts/rules", headers=h)).json() == []


async def test_viewers_read_alerts_only(
    archnest_client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    client, v = archnest_client, viewer_headers
    assert (await client.get("/api/alerts", headers=v)).status == 200
    assert (await client.get("/api/alerts?state=bogus", headers=v)).status == 400
    for method, path in (
        ("GET", "/api/alerts/channels"),
        ("GET", "/api/alerts/rules"),
        ("GET", "/settings/alerts"),
        ("POST", "/api/alerts/channels"),
        ("POST", "/api/alerts/rules"),
        ("POST", "/api/alerts/rules/1/snooze"),
        ("POST", "/api/alerts/channels/1/test"),
        ("PATCH", "/api/alerts/rules/1"),
        ("DELETE", "/api/alerts/channels/1"),
    ):
        resp = await client.request(method, path, json={}, headers=v)
        assert resp.status == 403, (method, path, resp.status)
        assert (await client.request(method, path, json={})).status == 401


async def test_changes_are_audited(
    archnest_client: TestClient, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    client, h = archnest_client, admin_headers
    channel = await add_channel(client, h, receiver, name="audited")
    rule = await add_rule(client, h, kind="host_down", channels=[channel])
    await client.post(f"/api/alerts/rules/{rule['id']}/snooze", json={"minutes": 5}, headers=h)
    await client.delete(f"/api/alerts/rules/{rule['id']}", headers=h)
    rows = await (await client.get("/api/audit", headers=h)).json()
    actions = [r["action"] for r in rows]
    for action in (
        "alert_channel.create",
        "alert_rule.create",
        "alert_rule.snooze",
        "alert_rule.delete",
    ):
        assert action in actions, actions
    created = next(r for r in rows if r["action"] == "alert_channel.create")
    assert created["detail"].get("name") == "audited" and created["result"] == "ok"
    assert SECRET not in repr(rows)


async def test_test_notice_is_signed_and_failures_reported(
    archnest_client: TestClient, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    client, h = archnest_client, admin_headers
    channel = await add_channel(client, h, receiver)
    resp = await client.post(f"/api/alerts/channels/{channel}/test", headers=h)
    assert resp.status == 200 and await resp.json() == {"ok": True, "error": None}
    [got] = receiver.got
    assert got.signed_with(SECRET)
    assert not got.signed_with("another-secret")
    assert got.json()["state"] == "test" and got.headers["Content-Type"] == "application/json"

    receiver.status = 500  # three attempts, then the reason
    resp = await client.post(f"/api/alerts/channels/{channel}/test", headers=h)
    result = await resp.json()
    assert result["ok"] is False and "HTTP 500" in result["error"], result
    assert len(receiver.got) == 1 + 3


async def test_apprise_json_target_delivers(
    archnest_client: TestClient, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    client, h = archnest_client, admin_headers
    url = f"json://127.0.0.1:{receiver.port}/apprise-in"
    resp = await client.post(
        "/api/alerts/channels", json={"name": "ap", "kind": "apprise", "url": url}, headers=h
    )
    channel = (await resp.json())["id"]
    resp = await client.post(f"/api/alerts/channels/{channel}/test", headers=h)
    assert await resp.json() == {"ok": True, "error": None}
    [got] = receiver.got
    assert got.path == "/apprise-in"
    body = got.json()
    assert "test notice" in body["message"] and body["title"] == "[TEST] Test notice", body
