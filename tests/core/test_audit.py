"""The audit log against the real app, dockerd and sshd: a row for every kind of change
made for real, no secret in any row, the hash chain checked by the real CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import archnest
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from archnest import DB_KEY, Settings
from archnest.audit_chain import apply_retention, verify
from archnest.audit_names import generic_name
from archnest.testing import make_user_headers
from sqlalchemy import text

from tests.agent.conftest import TOKEN as AGENT_TOKEN
from tests.agent.conftest import post_report
from tests.agent.payloads import make_report
from tests.docker_tcp.conftest import engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv

ALICE_PASSWORD = "alice-audit-password-1"
ORIGIN_FREE = {"X-Forwarded-For": "203.0.113.7"}


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = AGENT_TOKEN
    # The test client connects from 127.0.0.1: as a trusted proxy, its X-Forwarded-For
    # names the client, which is what the rows must show.
    archnest_settings.trusted_proxies = (ipaddress.ip_network("127.0.0.1/32"),)
    return archnest_settings


def _ensure(testenv: TestEnv, name: str) -> None:
    # The dockerd is shared: a test elsewhere that removes every container may have
    # taken this one; it is started again just before it is used.
    if testenv.docker("ps", "-q", "--filter", f"name=^/{name}$", check=False).strip() == "":
        testenv.docker("rm", "-f", name, check=False)
        testenv.run_container(name)


@pytest.fixture
def own_container(testenv: TestEnv) -> Iterator[str]:
    """One container of this test only (the dockerd is shared with other tests)."""
    name = f"audit-{secrets.token_hex(4)}"
    _ensure(testenv, name)
    try:
        yield name
    finally:
        testenv.docker("rm", "-f", name, check=False)


async def _rows(client: TestClient) -> list[dict[str, Any]]:
    async with client.app[DB_KEY].engine.connect() as conn:
        result = await conn.execute(text("SELECT * FROM audit_log ORDER BY id"))
        return [dict(r._mapping) for r in result]


async def _wait_for(client: TestClient, action: str, timeout: float = 10.0) -> dict[str, Any]:
    for _ in range(int(timeout / 0.1)):
        found = [r for r in await _rows(client) if r["action"] == action]
        if found:
            return found[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {action} row")


def _one(rows: list[dict[str, Any]], action: str) -> dict[str, Any]:
    found = [r for r in rows if r["action"] == action]
    assert len(found) == 1, (action, [r["action"] for r in rows])
    return found[0]


async def test_every_kind_of_change_is_a_row_and_no_secret_is(
    archnest_client: TestClient, testenv: TestEnv, own_container: str
) -> None:
    c = archnest_client
    admin = {**await make_user_headers(c, "alice", "admin", ALICE_PASSWORD), **ORIGIN_FREE}
    origin = {"Origin": str(c.make_url("")).rstrip("/"), **ORIGIN_FREE}
    secrets_used = [ALICE_PASSWORD, admin["Authorization"][7:], AGENT_TOKEN]

    # A docker host over mutual TLS (its key is a secret), renamed.
    body = engine_body(testenv, "tls", name=f"eng-{secrets.token_hex(3)}")
    secrets_used += [body["tls"]["key"].strip().splitlines()[1]]
    r = await c.post("/api/docker/hosts", json=body, headers=admin)
    assert r.status == 201, await r.text()
    engine = (await r.json())["id"]
    r = await c.patch(f"/api/docker/hosts/{engine}", json={"name": "renamed"}, headers=admin)
    assert r.status in (200, 204), await r.text()
    r = await c.post(f"/api/docker/hosts/{engine}/test", headers=admin)  # not a change
    # Container actions, through the engine's tree and the unified one.
    base = f"/api/docker/hosts/{engine}/containers/{own_container}"
    _ensure(testenv, own_container)
    r = await c.post(base + "/pause", headers=admin)
    assert r.status in (200, 204), await r.text()
    r = await c.post(
        f"/api/hosts/docker:{engine}/containers/{own_container}/unpause", headers=admin
    )
    assert r.status in (200, 204), await r.text()
    r = await c.post(base + "/explode", headers=admin)
    assert r.status == 400
    # A terminal over the real exec.
    _ensure(testenv, own_container)
    ws = await c.ws_connect(
        f"/api/docker/exec?host={engine}&container={own_container}&cmd=sh", headers=admin
    )
    await ws.send_bytes(b"echo au''dit\n")
    seen = ""
    while "\r\naudit\r\n" not in seen:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == WSMsgType.BINARY, msg
        seen += msg.data.decode(errors="replace")
    await ws.close()
    closed = await _wait_for(c, "terminal.close")

    # Sign-ins: the form and the JSON route, right and wrong; then sign out.
    r = await c.post(
        "/login",
        data={"username": "alice", "password": ALICE_PASSWORD, "next": "/"},
        headers=origin,
        allow_redirects=False,
    )
    assert r.status == 303
    r = await c.post("/logout", headers=origin, allow_redirects=False)
    assert r.status == 303
    r = await c.post("/login", data={"username": "mallory", "password": "guess-1"}, headers=origin)
    assert r.status == 401
    r = await c.post(
        "/api/auth/login", json={"username": "alice", "password": "guess-2"}, headers=ORIGIN_FREE
    )
    assert r.status == 401
    secrets_used += ["guess-1", "guess-2"]

    # An SSH target with a password and a key; updated, tested (not a change), deleted.
    payload = target_payload(testenv, testenv.ssh_target, "password", name="audit-ssh")
    secrets_used += [testenv.ssh.password, testenv.ssh.private_key.strip().splitlines()[1]]
    r = await c.post("/api/ssh/targets", json=payload, headers=admin)
    assert r.status == 201, await r.text()
    target = (await r.json())["id"]
    r = await c.patch(
        f"/api/ssh/targets/{target}",
        json={"auth": "key", "private_key": testenv.ssh.private_key},
        headers=admin,
    )
    assert r.status in (200, 204), await r.text()
    await c.post(f"/api/ssh/targets/{target}/test", headers=admin)
    r = await c.delete(f"/api/ssh/targets/{target}", headers=admin)
    assert r.status in (200, 204), await r.text()

    # A user, a token, an enrollment: created, changed, removed.
    r = await c.post(
        "/api/users",
        json={"username": "bob", "password": "bob-password-1", "role": "viewer"},
        headers=admin,
    )
    assert r.status == 201, await r.text()
    r = await c.patch("/api/users/bob", json={"password": "bob-password-2"}, headers=admin)
    assert r.status in (200, 204), await r.text()
    r = await c.delete("/api/users/bob", headers=admin)
    assert r.status in (200, 204), await r.text()
    secrets_used += ["bob-password-1", "bob-password-2"]
    r = await c.post("/api/tokens", json={"name": "ci"}, headers=admin)
    assert r.status == 201, await r.text()
    token = await r.json()
    secrets_used.append(token["token"])
    r = await c.delete(f"/api/tokens/{token['id']}", headers=admin)
    assert r.status in (200, 204), await r.text()
    r = await c.post("/api/agents/docker/enrollments", json={"host": "vm-audit"}, headers=admin)
    assert r.status == 201, await r.text()
    secrets_used.append((await r.json())["token"])
    r = await post_report(c, make_report("vm-shared", 2))  # the ingest: not a change
    assert r.status == 204, await r.text()
    r = await c.delete("/api/agents/docker/enrollments/vm-audit", headers=admin)
    assert r.status in (200, 204), await r.text()
    r = await c.delete(f"/api/docker/hosts/{engine}", headers=admin)
    assert r.status in (200, 204), await r.text()

    rows = await _rows(c)
    actions = [r["action"] for r in rows]
    host = f"docker:{engine}"
    row = _one(rows, "docker_host.create")
    assert (row["user"], row["host_id"], row["result"]) == ("alice", host, "ok")
    assert json.loads(row["detail"])["fields"] == ["name", "tls", "url"]
    assert json.loads(_one(rows, "docker_host.update")["detail"])["fields"] == ["name"]
    assert _one(rows, "docker_host.delete")["host_id"] == host
    for action in ("container.pause", "container.unpause"):
        row = _one(rows, action)
        assert (row["host_id"], row["container"], row["result"]) == (host, own_container, "ok")
    assert _one(rows, "container.invalid")["result"] == "invalid_action"
    opened = _one(rows, "terminal.open")
    assert (opened["host_id"], opened["container"], opened["user"]) == (
        host,
        own_container,
        "alice",
    )
    detail = json.loads(closed["detail"])
    assert detail["bytes_in"] == len(b"echo au''dit\n") and detail["bytes_out"] >= len("audit")
    assert 0 <= detail["seconds"] < 60
    logins = [r for r in rows if r["action"] in ("login", "login.failed")]
    assert [(r["action"], r["user"]) for r in logins] == [
        ("login", "alice"),
        ("login.failed", "mallory"),
        ("login.failed", "alice"),
    ]
    assert _one(rows, "logout")["user"] == "alice"
    for action in ("ssh_target.create", "ssh_target.update", "ssh_target.delete"):
        assert _one(rows, action)["host_id"] == f"ssh:{target}"
    assert json.loads(_one(rows, "ssh_target.update")["detail"])["fields"] == [
        "auth",
        "private_key",
    ]
    assert json.loads(_one(rows, "user.create")["detail"])["username"] == "bob"
    assert json.loads(_one(rows, "user.update")["detail"]) == {
        "fields": ["password"],
        "username": "bob",
    }
    assert _one(rows, "user.delete")["result"] == "ok"
    assert json.loads(_one(rows, "token.create")["detail"])["id"] == token["id"]
    assert _one(rows, "token.revoke")["user"] == "alice"
    assert _one(rows, "enrollment.create")["host_id"] == "agent:vm-audit"
    assert _one(rows, "enrollment.revoke")["host_id"] == "agent:vm-audit"
    # Not changes made by a person: tests, scans and the agent ingest.
    assert not [a for a in actions if a.endswith(".test") or "report" in a], actions
    # Every row from the forwarded client address (127.0.0.1 is a trusted proxy).
    assert {r["client_ip"] for r in rows} == {"203.0.113.7"}
    # No secret in any column of any row.
    dump = json.dumps(rows, default=str)
    leaked = [s for s in secrets_used if s and s in dump]
    assert not leaked, f"{len(leaked)} secrets in the audit log"


async def test_audit_api_filters_and_csv_reads_back_as_json(
    archnest_client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    c = archnest_client
    tricky = ['a,b "quoted"', "line\nbreak", "=HYPERLINK(1)", "ünï"]
    for name in tricky:
        r = await c.post("/api/auth/login", json={"username": name, "password": "wrong-pass"})
        assert r.status == 401
    for i in range(3):
        r = await c.post(
            "/api/users",
            json={"username": f"user{i}", "password": "password-12345"},
            headers=admin_headers,
        )
        assert r.status == 201
    await archnest.audit_event(
        c.app, "widget.reset", host_id="docker:9", detail={"password": "p4ss-w0rd", "name": "w"}
    )

    r = await c.get("/api/audit", headers=admin_headers)
    assert r.status == 200
    everything = await r.json()
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert set(everything[0]) == {
        "id", "at", "user", "action", "host_id", "container",
        "result", "client_ip", "detail", "recording_id",
    }  # fmt: skip
    widget = everything[0]
    assert (widget["action"], widget["detail"], widget["user"]) == (
        "widget.reset",
        {"name": "w"},
        None,
    )

    r = await c.get("/api/audit?action=user.", headers=admin_headers)
    assert {e["action"] for e in await r.json()} == {"user.create"}
    r = await c.get("/api/audit?action=login.failed&user=%3DHYPERLINK(1)", headers=admin_headers)
    assert [e["user"] for e in await r.json()] == ["=HYPERLINK(1)"]
    r = await c.get("/api/audit?host_id=docker:9", headers=admin_headers)
    assert [e["action"] for e in await r.json()] == ["widget.reset"]
    r = await c.get("/api/audit?limit=2&offset=1", headers=admin_headers)
    assert [e["id"] for e in await r.json()] == [e["id"] for e in everything[1:3]]
    future = int(datetime.now(UTC).timestamp()) + 3600
    r = await c.get(f"/api/audit?since={future}", headers=admin_headers)
    assert await r.json() == []
    first_at = everything[-1]["at"][:19] + "Z"
    r = await c.get(f"/api/audit?until={first_at}&since={first_at}", headers=admin_headers)
    assert everything[-1]["id"] in [e["id"] for e in await r.json()]
    for bad, field in (
        ("since=yesterday", "since"),
        ("limit=100000", None),
        ("format=xml", "format"),
    ):
        r = await c.get(f"/api/audit?{bad}", headers=admin_headers)
        assert r.status == 400, bad
        if field:
            assert (await r.json())["error"]["field"] == field

    r = await c.get("/api/audit?format=csv", headers=admin_headers)
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"].startswith("attachment;")
    back = list(csv.DictReader(io.StringIO(await r.text(), newline="")))
    assert len(back) == len(everything)
    for row, entry in zip(back, everything, strict=True):
        expected = {
            k: "" if v is None else json.dumps(v, sort_keys=True) if k == "detail" else str(v)
            for k, v in entry.items()
        }
        if expected["user"].startswith("="):
            expected["user"] = "'" + expected["user"]  # never a formula in a spreadsheet
        assert row == expected
    assert {r["user"] for r in back} >= {'a,b "quoted"', "line\nbreak", "'=HYPERLINK(1)", "ünï"}

    for url in ("/api/audit", "/api/audit?format=csv", "/settings/audit"):
        r = await c.get(url, headers=viewer_headers)
        assert r.status == 403, url


def test_generic_names_of_plugin_routes() -> None:
    assert generic_name("POST", "/api/widgets") == "widgets.create"
    assert generic_name("PATCH", "/api/widgets/{id}") == "widgets.update"
    assert generic_name("DELETE", "/api/widgets/{id}") == "widgets.delete"
    assert generic_name("POST", "/api/widgets/{id}/reset") == "widgets.reset"
    assert generic_name("PUT", "/api/my-plugin/things/{id}") == "my_plugin.things.update"


# ---- the chain, checked by the real command ----


def _verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archnest", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_env(archnest_settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHNEST_")}
    env.update(
        ARCHNEST_DATA_DIR=str(archnest_settings.data_dir),
        ARCHNEST_DATABASE_URL=archnest_settings.database_url,
        ARCHNEST_ADD_LOCAL_DOCKER="0",
    )
    return env


async def _sql(client: TestClient, statement: str, **params: Any) -> list[Any]:
    async with client.app[DB_KEY].engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return [dict(r._mapping) for r in result] if result.returns_rows else []


async def _restore(client: TestClient, row: dict[str, Any]) -> None:
    cols = ", ".join(f'"{k}"' for k in row)
    await _sql(
        client, f"INSERT INTO audit_log ({cols}) VALUES ({', '.join(':' + k for k in row)})", **row
    )


async def test_verify_finds_a_changed_a_removed_and_a_missing_last_row(
    archnest_client: TestClient, admin_headers: dict[str, str], cli_env: dict[str, str]
) -> None:
    c = archnest_client
    for i in range(6):
        r = await c.post(
            "/api/users",
            json={"username": f"u{i}", "password": "password-12345"},
            headers=admin_headers,
        )
        assert r.status == 201
    ok = await asyncio.to_thread(_verify, cli_env)
    assert ok.returncode == 0, ok.stderr
    assert "6 rows" in ok.stdout

    # A row's detail changed in the database: that row.
    row3 = (await _sql(c, "SELECT * FROM audit_log WHERE id = 3"))[0]
    await _sql(c, "UPDATE audit_log SET detail = :d WHERE id = 3", d='{"username":"evil"}')
    bad = await asyncio.to_thread(_verify, cli_env)
    assert bad.returncode == 1 and "row 3" in bad.stderr and "changed" in bad.stderr
    await _sql(c, "UPDATE audit_log SET detail = :d WHERE id = 3", d=row3["detail"])
    assert (await verify(c.app[DB_KEY])).ok  # restored (the command's own checks: above)

    # A row in the middle removed: named.
    row4 = (await _sql(c, "SELECT * FROM audit_log WHERE id = 4"))[0]
    await _sql(c, "DELETE FROM audit_log WHERE id = 4")
    bad = await asyncio.to_thread(_verify, cli_env)
    assert bad.returncode == 1 and "row 4 is missing" in bad.stderr
    await _restore(c, row4)
    assert (await verify(c.app[DB_KEY])).ok  # restored (the command's own checks: above)

    # The last row removed: the chain alone cannot tell, the head can.
    row6 = (await _sql(c, "SELECT * FROM audit_log WHERE id = 6"))[0]
    await _sql(c, "DELETE FROM audit_log WHERE id = 6")
    bad = await asyncio.to_thread(_verify, cli_env)
    assert bad.returncode == 1 and "row 6 is missing" in bad.stderr, bad.stderr
    await _restore(c, row6)
    assert (await verify(c.app[DB_KEY])).ok  # restored (the command's own checks: above)


async def test_retention_removes_the_oldest_rows_and_the_chain_still_verifies(
    archnest_client: TestClient, admin_headers: dict[str, str], cli_env: dict[str, str]
) -> None:
    c = archnest_client
    db = c.app[DB_KEY]
    for i in range(5):
        r = await c.post(
            "/api/users",
            json={"username": f"r{i}", "password": "password-12345"},
            headers=admin_headers,
        )
        assert r.status == 201
    rows = await _rows(c)
    at3 = rows[2]["at"]  # text from SQLite, a datetime from PostgreSQL
    at3 = datetime.fromisoformat(at3) if isinstance(at3, str) else at3
    at3 = at3.replace(tzinfo=UTC) if at3.tzinfo is None else at3
    # As if it were a year and a day later, with one year kept: rows 1-2 are too old.
    gone = await apply_retention(db, 365, now=at3 + timedelta(days=365))
    assert gone == 2
    assert [r["id"] for r in await _rows(c)] == [3, 4, 5]
    ok = await asyncio.to_thread(_verify, cli_env)
    assert ok.returncode == 0 and "3 rows" in ok.stdout, ok.stderr
    # The chain goes on after it.
    r = await c.delete("/api/users/r0", headers=admin_headers)
    assert r.status == 200
    ok = await asyncio.to_thread(_verify, cli_env)
    assert ok.returncode == 0 and "4 rows" in ok.stdout, ok.stderr
    # Deleting the start's row afterwards is still noticed.
    await _sql(c, "DELETE FROM audit_log WHERE id = 3")
    bad = await asyncio.to_thread(_verify, cli_env)
    assert bad.returncode == 1 and "row 3 is missing" in bad.stderr
    # Everything old: the table empties and the next row continues the chain.
    assert await apply_retention(db, 1, now=datetime.now(UTC) + timedelta(days=3)) == 3
    assert await _rows(c) == []
    assert (await verify(c.app[DB_KEY])).ok  # an empty chain that continues from the head
    assert await archnest.audit_event(c.app, "widget.reset") == 7
    ok = await asyncio.to_thread(_verify, cli_env)
    assert ok.returncode == 0 and "1 rows" in ok.stdout, ok.stderr
    assert await apply_retention(db, 0) == 0  # 0: kept forever


async def test_throttled_sign_ins_are_not_rows(archnest_client: TestClient) -> None:
    c = archnest_client
    statuses = []
    for _ in range(8):
        r = await c.post("/api/auth/login", json={"username": "admin", "password": "wrong-pass"})
        statuses.append(r.status)
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429, statuses
    # Refused before any check: a flood of guesses does not flood the log.
    rows = await _rows(c)
    assert [r["action"] for r in rows] == ["login.failed"] * statuses.count(401)
