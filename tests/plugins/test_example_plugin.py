"""The example plugin's own behaviour, loaded explicitly (not installed) into the real
app — the way docs/plugin-authors.md tells authors to test theirs."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from archnest import Settings, create_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "archnest-example-plugin"


@pytest.fixture
def archnest_app(archnest_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> web.Application:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    plugin = importlib.import_module("archnest_example.plugin")
    assert sys.modules["archnest_example"].__file__.startswith(str(EXAMPLE))
    return create_app(archnest_settings, extra_plugins=[plugin])


NOTE = {"host_id": "docker:1", "container": "web", "text": "  keep <b>me</b>  "}


async def test_notes_are_admin_written_and_viewer_read(
    archnest_client: TestClient, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    api = "/api/example/notes"
    assert (await archnest_client.post(api, json=NOTE, headers=viewer_headers)).status == 403
    resp = await archnest_client.post(api, json=NOTE, headers=admin_headers)
    assert resp.status == 201
    created = await resp.json()
    assert created["text"] == "keep <b>me</b>" and created["author"] == "alice"
    resp = await archnest_client.get(f"{api}?host=docker:1&container=web", headers=viewer_headers)
    assert [n["id"] for n in await resp.json()] == [created["id"]]
    resp = await archnest_client.get(f"{api}?container=other", headers=viewer_headers)
    assert await resp.json() == []
    page = await (await archnest_client.get("/example/notes", headers=viewer_headers)).text()
    assert "keep &lt;b&gt;me&lt;/b&gt;" in page and "<b>me</b>" not in page


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({**NOTE, "host_id": "docker 1; rm -rf /"}, 400, "bad_host_id"),
        ({**NOTE, "container": "../etc"}, 400, None),
        ({**NOTE, "text": "   "}, 400, "bad_text"),
        ({**NOTE, "text": "x" * 2001}, 400, "bad_text"),
        ({**NOTE, "text": "x" * 20_000}, 413, None),
    ],
)
async def test_bad_notes_are_refused_and_nothing_is_stored(
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    body: dict,
    status: int,
    code: str | None,
) -> None:
    resp = await archnest_client.post("/api/example/notes", json=body, headers=admin_headers)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert code is None or error["code"] == code
    listed = await archnest_client.get("/api/example/notes", headers=admin_headers)
    assert await listed.json() == []


async def test_malformed_json_is_a_400(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    resp = await archnest_client.post(
        "/api/example/notes",
        data=b"{not json",
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert resp.status == 400
