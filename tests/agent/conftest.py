"""Fixtures for the push-agent tests: an app with an agent token, the real agent
script, and a wire tap that records exactly what the agent sent."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings, create_app

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "plugins" / "docker_agent" / "files" / "archnest-docker-agent.sh"
TOKEN = "agent-token-0123456789abcdef"
REPORT_URL = "/api/agents/docker/report"


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    # The agent ingest enabled (the docker_agent plugin reads this as its token).
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = TOKEN
    return archnest_settings


Restart = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def restart_app(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    archnest_client: TestClient,
    archnest_settings: Settings,
) -> Restart:
    """Stop the app and start it again over the same database, with some plugin
    settings changed (``None`` unsets one): settings are read once, at startup."""

    async def restart(**env: str | None) -> TestClient:
        await archnest_client.close()
        plugin_env = {**archnest_settings.plugin_env, **env}
        plugin_env = {k: v for k, v in plugin_env.items() if v is not None}
        settings = replace(archnest_settings, plugin_env=plugin_env)
        return await aiohttp_client(create_app(settings))

    return restart


async def post_report(
    client: TestClient, body: bytes | dict[str, Any], token: str | None = TOKEN, **kw: Any
):  # type: ignore[no-untyped-def]
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await client.post(REPORT_URL, data=data, headers=headers, **kw)


@dataclass
class AgentRun:
    rc: int
    stdout: str
    stderr: str


async def run_agent(*args: str, env: dict[str, str], timeout: float = 120) -> AgentRun:
    """Run the real agent script as a child process (the test server keeps serving)."""
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(AGENT),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return AgentRun(proc.returncode, out.decode(), err.decode())


def agent_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("ARCHNEST_")}
    env.update(extra)
    return env


@dataclass
class WireTap:
    """A loopback TCP relay that records every byte a client sends to the server."""

    target_port: int
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, tap: bool) -> None:
            try:
                while chunk := await src.read(65536):
                    if tap:
                        self.received.extend(chunk)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))


@pytest.fixture
async def wiretap(archnest_client: TestClient) -> AsyncIterator[WireTap]:
    tap = WireTap(target_port=archnest_client.server.port)  # type: ignore[arg-type]
    await tap.start()
    try:
        yield tap
    finally:
        await tap.close()


@pytest.fixture
def base_env() -> dict[str, str]:
    return dict(os.environ)
