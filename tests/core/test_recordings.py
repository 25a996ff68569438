"""Terminal recordings against the real app, dockerd and sshd: a session over the real
exec (docker and ssh sources) is stored as asciicast v2 with its output, without
keystrokes unless switched on; off stores nothing; the size cap; admin-only reading."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from archnest import DB_KEY, SETTINGS_KEY
from archnest.recordings import apply_retention, recordings
from archnest.testing import make_user_headers
from sqlalchemy import delete, text, update

from tests.docker_tcp.conftest import engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv


@pytest.fixture
def own_container(testenv: TestEnv) -> Iterator[str]:
    name = f"rec-{secrets.token_hex(4)}"
    testenv.run_container(name)
    try:
        yield name
    finally:
        testenv.docker("rm", "-f", name, check=False)


class Term:
    def __init__(self, ws: Any) -> None:
        self.ws, self.seen = ws, ""

    async def expect(self, needle: str, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while needle not in self.seen:
                msg = await self.ws.receive()
                assert msg.type == WSMsgType.BINARY, (msg, self.seen[-500:])
                self.seen += msg.data.decode(errors="replace")


async def _docker_engine(c: TestClient, admin: dict[str, str], env: TestEnv) -> str:
    body = engine_body(env, "tcp", name=f"rec-eng-{secrets.token_hex(3)}")
    r = await c.post("/api/docker/hosts", json=body, headers=admin)
    assert r.status == 201, await r.text()
    return f"/api/docker/exec?host={(await r.json())['id']}"


async def _ssh_target(c: TestClient, admin: dict[str, str], env: TestEnv) -> str:
    body = target_payload(env, env.ssh_target, "key", name=f"rec-ssh-{secrets.token_hex(3)}")
    body["docker"] = True
    r = await c.post("/api/ssh/targets", json=body, headers=admin)
    assert r.status == 201, await r.text()
    return f"/api/docker-ssh/exec?host={(await r.json())['id']}"


def _ensure(env: TestEnv, url: str) -> None:
    # The dockerd is shared: a test elsewhere that removes every container may have
    # taken this one; it is started again just before it is used.
    name = url.split("container=")[1].split("&")[0]
    if env.docker("ps", "-q", "--filter", f"name=^/{name}$", check=False).strip() == "":
        env.docker("rm", "-f", name, check=False)
        env.run_container(name)


async def _session(c: TestClient, url: str, admin: dict[str, str], env: TestEnv) -> str:
    """Type an echo whose answer is not in the typed text, resize, close; the marker."""
    n = random.randint(10_000, 99_999)
    for attempt in range(3):
        _ensure(env, url)
        before = {r["id"] for r in await _rows(c)}
        ws = await c.ws_connect(url, headers=admin)
        term = Term(ws)
        await ws.send_bytes(f"echo rec-$(({n}+1))-marker\n".encode())
        try:
            await term.expect(f"rec-{n + 1}-marker")
            break
        except AssertionError as exc:
            # Another test on the shared dockerd removed the container under us: that
            # session's recording (if any) is dropped and the whole thing starts again.
            await ws.close()
            gone = "No such container" in term.seen or "no container" in str(exc)
            if attempt == 2 or not gone:
                raise
            await asyncio.sleep(0.5)
            await _drop_recordings(c, before)
    await ws.send_str(json.dumps({"type": "resize", "cols": 101, "rows": 33}))
    await ws.send_bytes(b"echo after-resize\n")
    await term.expect("\r\nafter-resize")
    await ws.close()
    return f"rec-{n + 1}-marker"


async def _rows(c: TestClient) -> list[dict[str, Any]]:
    async with c.app[DB_KEY].engine.connect() as conn:
        result = await conn.execute(text("SELECT * FROM recordings ORDER BY started_at"))
        return [dict(r._mapping) for r in result]


async def _drop_recordings(c: TestClient, keep: set[str]) -> None:
    async with c.app[DB_KEY].engine.begin() as conn:
        await conn.execute(delete(recordings).where(recordings.c.id.not_in(keep)))


async def _ended(c: TestClient, count: int = 1) -> list[dict[str, Any]]:
    for _ in range(100):
        rows = await _rows(c)
        if len(rows) >= count and all(r["ended_at"] is not None for r in rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"recordings not completed: {await _rows(c)}")


async def _cast(c: TestClient, rec_id: str, admin: dict[str, str]) -> tuple[dict, list[list]]:
    r = await c.get(f"/api/recordings/{rec_id}", headers=admin)
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("application/x-asciicast")
    lines = (await r.text()).splitlines()
    header, events = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert header["version"] == 2 and isinstance(header["timestamp"], int)
    assert header["env"]["TERM"] == "xterm-256color" and header["env"]["SHELL"] == "/bin/sh"
    times = [e[0] for e in events]
    assert times == sorted(times) and all(isinstance(t, float | int) for t in times)
    assert all(len(e) == 3 and e[1] in ("o", "i", "r", "m") for e in events)
    return header, events


def _output(events: list[list]) -> str:
    return "".join(e[2] for e in events if e[1] == "o")


@pytest.mark.parametrize("source", ["docker", "ssh"])
async def test_a_session_is_recorded_without_keystrokes(
    archnest_client: TestClient, testenv: TestEnv, own_container: str, source: str
) -> None:
    c = archnest_client
    admin = await make_user_headers(c, "alice", "admin")
    base = await (_docker_engine if source == "docker" else _ssh_target)(c, admin, testenv)
    marker = await _session(
        c, f"{base}&container={own_container}&cmd=sh&cols=90&rows=20", admin, testenv
    )

    [row] = await _ended(c)
    assert row["user"] == "alice" and row["container"] == own_container
    assert row["cmd"] == "/bin/sh" and not row["input_recorded"] and row["duration"] > 0
    header, events = await _cast(c, row["id"], admin)
    assert (header["width"], header["height"]) == (90, 20)
    assert header["title"] == f"{row['host_id']} {own_container}"
    assert marker in _output(events) and "\r\nafter-resize" in _output(events)
    assert ["r", "101x33"] in [e[1:] for e in events]
    assert [e for e in events if e[1] == "i"] == []  # keystrokes are off by default

    # On disk: compressed, private.
    path = c.app[SETTINGS_KEY].data_dir / row["path"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with gzip.open(path, "rb") as f:
        raw = f.read()
    assert json.loads(raw.splitlines()[0])["version"] == 2
    assert row["bytes"] == len(raw) and path.stat().st_size < len(raw)

    # The list and the audit row point at it.
    r = await c.get("/api/recordings?user=alice", headers=admin)
    listed = await r.json()
    assert [x["id"] for x in listed] == [row["id"]] and "path" not in listed[0]
    r = await c.get("/api/recordings?host_id=nope:1", headers=admin)
    assert await r.json() == []
    for _ in range(50):
        r = await c.get("/api/audit?action=terminal.close", headers=admin)
        closes = await r.json()
        if closes:
            break
        await asyncio.sleep(0.1)
    assert closes[0]["recording_id"] == row["id"]


async def test_keystrokes_when_switched_on_nothing_when_off_and_reading_is_admin_only(
    archnest_client: TestClient, testenv: TestEnv, own_container: str
) -> None:
    c = archnest_client
    admin = await make_user_headers(c, "alice", "admin")
    viewer = await make_user_headers(c, "victor", "viewer")
    url = await _docker_engine(c, admin, testenv) + f"&container={own_container}&cmd=sh"
    settings = c.app[SETTINGS_KEY]

    settings.record_input = True
    await _session(c, url, admin, testenv)
    [row] = await _ended(c)
    assert row["input_recorded"]
    _, events = await _cast(c, row["id"], admin)
    typed = "".join(e[2] for e in events if e[1] == "i")
    assert "echo rec-$((" in typed and "echo after-resize\n" in typed

    settings.record_input = False
    settings.recordings = False
    await _session(c, url, admin, testenv)
    await asyncio.sleep(0.5)
    assert len(await _rows(c)) == 1  # nothing new
    assert [p.name for p in (settings.data_dir / "recordings").iterdir()] == [
        row["path"].split("/")[-1]
    ]

    rid = row["id"]
    for path in (
        "/api/recordings",
        f"/api/recordings/{rid}",
        f"/recordings/{rid}",
        "/settings/recordings",
    ):
        assert (await c.get(path, headers=viewer)).status == 403, path
        assert (await c.get(path, headers=admin)).status == 200, path
    for missing in ("0" * 32, "not-an-id", "../../secret.key"):
        assert (await c.get(f"/api/recordings/{missing}", headers=admin)).status == 404
    r = await c.get(f"/recordings/{rid}", headers=admin)
    page = await r.text()
    assert f'data-src="/api/recordings/{rid}"' in page and own_container in page
    assert "'wasm-unsafe-eval'" in r.headers["Content-Security-Policy"]
    assert "unsafe-eval'" not in r.headers["Content-Security-Policy"].replace("wasm-unsafe", "")
    r = await c.get("/settings/recordings", headers=admin)
    assert f'href="/recordings/{rid}"' in await r.text()


async def test_the_size_cap_ends_the_recording_not_the_session(
    archnest_client: TestClient, testenv: TestEnv, own_container: str
) -> None:
    c = archnest_client
    admin = await make_user_headers(c, "alice", "admin")
    url = await _docker_engine(c, admin, testenv) + f"&container={own_container}&cmd=sh"
    c.app[SETTINGS_KEY].recording_max_bytes = 4096
    _ensure(testenv, url)
    ws = await c.ws_connect(url, headers=admin)
    term = Term(ws)
    await ws.send_bytes(b"seq 1 3000; echo seq-$((1+1))-done\n")
    await term.expect("seq-2-done")
    await ws.send_bytes(b"echo still-$((3+4))-here\n")
    await term.expect("still-7-here")  # the session goes on
    await ws.close()
    [row] = await _ended(c)
    _, events = await _cast(c, row["id"], admin)
    assert events[-1][1] == "m" and "size limit" in events[-1][2]
    assert "seq-2-done" not in _output(events) and "still-7-here" not in _output(events)
    assert 0 < row["bytes"] <= 4096 + 200


async def test_retention_removes_old_recordings_and_their_files(
    archnest_client: TestClient, testenv: TestEnv, own_container: str
) -> None:
    c = archnest_client
    admin = await make_user_headers(c, "alice", "admin")
    url = await _docker_engine(c, admin, testenv) + f"&container={own_container}&cmd=sh"
    await _session(c, url, admin, testenv)
    await _session(c, url, admin, testenv)
    old, new = await _ended(c, 2)
    db, data_dir = c.app[DB_KEY], c.app[SETTINGS_KEY].data_dir
    then = datetime.now(UTC) - timedelta(days=91)
    async with db.engine.begin() as conn:
        await conn.execute(
            update(recordings)
            .where(recordings.c.id == old["id"])
            .values(started_at=then.replace(tzinfo=None) if db.is_sqlite else then)
        )
    assert await apply_retention(db, data_dir, 90) == 1
    assert [r["id"] for r in await _rows(c)] == [new["id"]]
    assert not (data_dir / old["path"]).exists() and (data_dir / new["path"]).exists()
    assert (await c.get(f"/api/recordings/{old['id']}", headers=admin)).status == 404
