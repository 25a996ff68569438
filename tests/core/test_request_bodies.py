"""Request bodies are validated by the models the OpenAPI document shows (read_model):
one error shape for malformed JSON, off-schema bodies and oversize ones."""

from __future__ import annotations

import pytest
from archnest.testing import ADMIN_PASSWORD

SECRET = "-----BEGIN PRIVATE KEY-----\nsecret-material-not-for-errors\n"


async def _post(client, headers, path: str, data: bytes):
    r = await client.post(path, data=data, headers={**headers, "Content-Type": "application/json"})
    return r.status, (await r.json())["error"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"url": "tcp://127.0.0.1:1"}', "name: Field required"),
        (b'{"name": 1, "url": "tcp://127.0.0.1:1"}', "name: Input should be a valid string"),
        (b'{"name": "", "url": "tcp://127.0.0.1:1"}', "name: String should have at least 1"),
        (b'{"name": "n", "url": "tcp://127.0.0.1:1", "colour": "blue"}', "colour: Extra inputs"),
        (b'{"name": "n", "url": "tcp://127.0.0.1:1", "tls": {"verify": "yes"}}', "tls.verify:"),
        (b'{"name": "n", "url": "tcp://127.0.0.1:1", "tls": {"ca": "\\u00e3"}}', "tls.ca:"),
    ],
)
async def test_off_schema_bodies_name_the_field(archnest_client, admin_headers, body, where):
    status, error = await _post(archnest_client, admin_headers, "/api/docker/hosts", body)
    assert (status, error["code"]) == (400, "invalid_body"), error
    assert where in error["message"], error
    assert (
        await (await archnest_client.get("/api/docker/hosts", headers=admin_headers)).json()
    ) == []


async def test_strict_types_and_no_input_in_the_message(archnest_client, admin_headers):
    # "22" is not a port, true is not 1; the message names fields, never echoes values.
    body = (
        b'{"name": "t", "host": "127.0.0.1", "username": "u", "port": "22", '
        b'"jump": [true], "private_key": 5, "password": "'
        + SECRET.encode().replace(b"\n", b"\\n")
        + b'", "colour": "'
        + SECRET.encode().replace(b"\n", b"\\n")
        + b'"}'
    )
    status, error = await _post(archnest_client, admin_headers, "/api/ssh/targets", body)
    assert (status, error["code"]) == (400, "invalid_body"), error
    for field in ("port", "jump.0", "private_key", "colour"):
        assert f"{field}:" in error["message"], error
    assert "secret-material" not in error["message"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b"null", b"", b'{"name": "\\ud800", "url": "tcp://127.0.0.1:1"}'],
)
async def test_malformed_json(archnest_client, admin_headers, body):
    status, error = await _post(archnest_client, admin_headers, "/api/docker/hosts", body)
    assert (status, error["code"]) == (400, "malformed_json"), error


async def test_a_surrogate_pair_is_text(archnest_client, admin_headers):
    # An escaped pair (an emoji) is a valid character: only a lone half is refused.
    body = b'{"name": "ship \\ud83d\\udea2", "url": "tcp://127.0.0.1:1"}'
    r = await archnest_client.post("/api/docker/hosts", data=body, headers=admin_headers)
    assert r.status == 201, await r.text()
    assert (await r.json())["name"] == "ship \U0001f6a2"


async def test_oversize_body_is_413(archnest_client, admin_headers):
    body = b'{"name": "' + b"x" * (300 * 1024) + b'", "url": "tcp://127.0.0.1:1"}'
    status, error = await _post(archnest_client, admin_headers, "/api/docker/hosts", body)
    assert (status, error["code"]) == (413, "payload_too_large"), error


async def test_json_login_off_schema_is_400_and_not_a_failed_attempt(archnest_client):
    for _ in range(8):  # more than the per-username budget of failed sign-ins
        r = await archnest_client.post("/api/auth/login", json={"username": "admin", "password": 1})
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_body"
    ok = await archnest_client.post(
        "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert ok.status == 200
