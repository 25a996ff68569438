"""The engine's container event stream (``GET /events``), for the core's live state.

The core keeps one subscription per engine; it lists the engine after the first
``None`` (subscribed), so an event between subscribing and listing is never lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import aiohttp
import orjson

# Only container events: the live state has no use for image, network or volume ones.
_FILTERS = orjson.dumps({"type": ["container"]}).decode()
MAX_EVENT = 1024 * 1024  # one event with every label of a container is a few KiB


async def engine_events(client: aiodocker.Docker) -> AsyncIterator[dict[str, Any] | None]:
    """Yield ``None`` once the engine accepted the subscription, then each event."""
    # An idle engine sends nothing for hours: no read timeout, only the connect bound.
    timeout = aiohttp.ClientTimeout(
        total=None, sock_read=None, connect=client._timeout.connect, sock_connect=None
    )
    # aiodocker's DockerEvents runs its own task and queue per subscriber; reading the
    # response here keeps one request per engine and its lifetime in the caller's hands.
    async with client._query("events", params={"filters": _FILTERS}, timeout=timeout) as response:
        try:
            yield None
            buf = b""
            async for chunk in response.content.iter_any():
                buf += chunk
                if len(buf) > MAX_EVENT and b"\n" not in buf:
                    raise ValueError("an engine event exceeds 1 MiB")
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        event = orjson.loads(line)
                        if isinstance(event, dict):
                            yield event
        finally:
            # A subscription is never finished cleanly: it must not go back to the pool.
            response.close()
