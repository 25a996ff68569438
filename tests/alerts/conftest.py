"""A local notice receiver (a real HTTP server on loopback) and small helpers for the
alerting tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from archnest import Settings

SECRET = "hook-secret-for-tests"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "stats_every_second: the app samples stats every second (ARCHNEST_STATS_INTERVAL=1)",
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("X-ArchNest-Signature", ""), expected)


@dataclass
class Receiver:
    port: int = 0
    got: list[Received] = field(default_factory=list)
    status: int = 200

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def notices(self, state: str | None = None, container: str | None = None) -> list[dict]:
        out = []
        for r in self.got:
            try:
                body = r.json()
            except ValueError:
                continue
            if state is not None and body.get("state") != state:
                continue
            if container is not None and body.get("container") != container:
                continue
            out.append(body)
        return out

    async def wait_for(
        self, what: Callable[[], Any], timeout: float, describe: Callable[[], str] = lambda: ""
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"not within {timeout} s; received {self.got!r} {describe()}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def take(request: web.Request) -> web.Response:
        rec.got.append(Received(request.path, dict(request.headers), await request.read()))
        return web.Response(status=rec.status, text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", take)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield rec
    finally:
        await runner.cleanup()


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    archnest_settings.alerts_interval = 1.0
    return archnest_settings


async def add_channel(
    client: TestClient, headers: dict[str, str], receiver: Receiver, name: str = "hook"
) -> int:
    resp = await client.post(
        "/api/alerts/channels",
        json={"name": name, "kind": "webhook", "url": receiver.url(), "secret": SECRET},
        headers=headers,
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def add_rule(client: TestClient, headers: dict[str, str], **fields: Any) -> dict:
    body = {"name": fields.pop("name", fields["kind"]), **fields}
    resp = await client.post("/api/alerts/rules", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def alerts_of(client: TestClient, headers: dict[str, str], **query: str) -> list[dict]:
    resp = await client.get("/api/alerts", params=query, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


Waiter = Callable[[], Awaitable[Any]]
