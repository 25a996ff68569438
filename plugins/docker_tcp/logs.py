"""Container logs: Docker's multiplexed stream split into marked stdout/stderr lines.

aiodocker's ``container.log()`` drops the stream id of each frame, so the frames are
read here from the same request aiodocker would make; TTY containers have one raw
stream, reported as stdout.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import aiohttp
from archnest import LogLine, LogLineSplitter, LogOptions

_HEADER = struct.Struct(">BxxxL")
_STREAMS = {1: "stdout", 2: "stderr"}


def log_params(options: LogOptions, follow: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "stdout": "1",
        "stderr": "1",
        "follow": "1" if follow else "0",
        "timestamps": "1" if options.timestamps else "0",
        "tail": "all" if options.tail is None else str(options.tail),
    }
    if options.since is not None:
        params["since"] = str(options.since)
    if options.until is not None:
        params["until"] = str(options.until)
    return params


async def read_frames(
    response: aiohttp.ClientResponse, tty: bool
) -> AsyncIterator[tuple[str, bytes]]:
    """Yield ``(stream, bytes)`` pieces until the engine ends the response.

    Frames are cut from whatever the socket delivered, and consecutive frames of one
    stream are joined: one await per network read, not two per log line (a long log
    is mostly one-line frames)."""
    content = response.content
    if tty:
        async for chunk in content.iter_any():
            yield "stdout", chunk
        return
    buf = b""
    try:
        async for chunk in content.iter_any():
            buf = buf + chunk if buf else chunk
            pos, end = 0, len(buf)
            kind_run, run = None, []
            pieces: list[tuple[str, bytes]] = []
            while end - pos >= _HEADER.size:
                kind, length = _HEADER.unpack_from(buf, pos)
                start = pos + _HEADER.size
                if end - start < length:
                    break
                if length:
                    if kind != kind_run and run:
                        pieces.append((_STREAMS.get(kind_run, "stdout"), b"".join(run)))  # type: ignore[arg-type]
                        run = []
                    kind_run = kind
                    run.append(buf[start : start + length])
                pos = start + length
            if run:
                pieces.append((_STREAMS.get(kind_run, "stdout"), b"".join(run)))  # type: ignore[arg-type]
            buf = buf[pos:]
            for piece in pieces:
                yield piece
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        return


async def stream_lines(
    client: aiodocker.Docker, container_id: str, tty: bool, options: LogOptions, follow: bool
) -> AsyncIterator[LogLine | None]:
    """Yield ``None`` once the engine accepted the request, then every line."""
    # Streams must not be cut by a read timeout; the connect stays bounded.
    timeout = aiohttp.ClientTimeout(
        total=None, sock_read=None, connect=client._timeout.connect, sock_connect=None
    )
    # aiodocker has no public call that keeps the frame headers (see module docstring).
    # Its ``_query`` hands the response over without ever releasing it: without the
    # ``close()`` below every dropped follow kept its engine connection, and the
    # connector's limit (100) then starved every other request to that engine.
    async with client._query(
        f"containers/{container_id}/logs", params=log_params(options, follow), timeout=timeout
    ) as response:
        finished = False
        try:
            yield None
            splitter = LogLineSplitter(options.timestamps)
            frames = read_frames(response, tty)
            try:
                async for stream, data in frames:
                    for line in splitter.feed(stream, data):
                        yield line
            finally:
                await frames.aclose()
            finished = True
            for line in splitter.flush():
                yield line
        finally:
            # An unfinished stream must not go back to the pool: close it outright.
            if finished:
                response.release()
            else:
                response.close()
