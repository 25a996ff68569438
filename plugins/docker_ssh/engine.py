"""The Engine API fast path: ``docker system dial-stdio`` kept open per target.

Listing through ``docker ps`` costs a docker CLI start on the host (tens of ms of CPU)
for every request. Instead, each target keeps one ``docker system dial-stdio`` process
on its pooled SSH connection (the mechanism ``docker -H ssh://`` uses; ``sudo -n`` in
front when the target has sudo; the remote DOCKER_HOST applies) and speaks HTTP/1.1
keep-alive to the Engine API over its stdin/stdout: ``GET /_ping`` when it opens (the
``Api-Version`` header picks the API version: the lower of the daemon's and
``KNOWN_API``), then fixed read-only paths. Requests on one stream are serialised.

Only constant paths reach the stream: the version comes from ints, ``all`` is a bool,
the event filter is a constant, and ``_check_path`` refuses anything else. Any failure
(the process died, an unreadable response, a timeout, no ``dial-stdio`` on an old
docker, sudo refused) closes the stream and returns ``None``: the caller falls back to
the CLI for that request. A
stream that had worked and fails is retried once on a fresh one (a dropped connection
or killed process); a stream that cannot be opened backs the target off (5 s doubling
to 5 min) so a host without ``dial-stdio`` does not pay a failed attempt every time.
The process is a background channel of the pooled connection: it ends with it (idle
close, reconnect, target edit, pool close), and the next request opens a new one.

An event subscription is a long-lived request, so it gets a ``dial-stdio`` process of
its own (``open_events``, read by ``events``), never the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from archnest import HostError
from archnest.ssh import PooledProcess, SshPool

from . import commands

log = logging.getLogger("archnest.docker_ssh.engine")

KNOWN_API = (1, 41)
MIN_API = (1, 24)
STEP_TIMEOUT = 5.0
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 300.0
MAX_LINE = 8192
MAX_HEADERS = 100
MAX_BODY = 64 * 1024 * 1024
_VERSION = re.compile(r"^(\d{1,3})\.(\d{1,3})$")
# ``{"type":["container"]}`` url-encoded: only container events, a constant.
EVENTS_FILTERS = "%7B%22type%22%3A%5B%22container%22%5D%7D"
_PATH = re.compile(
    r"^/(_ping|v\d{1,3}\.\d{1,3}/containers/json\?all=[01]"
    r"|v\d{1,3}\.\d{1,3}/containers/[0-9a-f]{12,64}/stats\?stream=false&one-shot=true"
    r"|v\d{1,3}\.\d{1,3}/events\?filters=" + re.escape(EVENTS_FILTERS) + ")$"
)
_CHUNK = re.compile(rb"^([0-9a-fA-F]{1,8})(;[^\r\n]*)?$")


class EngineProtocolError(Exception):
    """The stream said something that is not a usable HTTP/1.1 answer."""


def _check_path(path: str) -> str:
    if not _PATH.fullmatch(path):
        raise ValueError(f"path {path!r} is not an allowed Engine API path")
    return path


def api_version(header: str | None) -> tuple[int, int]:
    """The version to speak: min(daemon's ``Api-Version``, ``KNOWN_API``)."""
    m = _VERSION.fullmatch((header or "").strip())
    if not m:
        return MIN_API
    return min((int(m[1]), int(m[2])), KNOWN_API)


def list_path(version: tuple[int, int], all: bool) -> str:
    return _check_path(f"/v{int(version[0])}.{int(version[1])}/containers/json?all={int(all)}")


def stats_path(version: tuple[int, int], container_id: str) -> str:
    """A one-shot stats sample of a container by its id (hex only: see _PATH)."""
    v = f"/v{int(version[0])}.{int(version[1])}"
    return _check_path(f"{v}/containers/{container_id}/stats?stream=false&one-shot=true")


def events_path(version: tuple[int, int]) -> str:
    return _check_path(f"/v{int(version[0])}.{int(version[1])}/events?filters={EVENTS_FILTERS}")


class EngineStream:
    """HTTP/1.1 over one ``dial-stdio`` process (the caller serialises requests)."""

    def __init__(self, proc: PooledProcess, sudo: bool) -> None:
        self.proc, self.sudo = proc, sudo
        self.version = MIN_API
        self._buf = b""
        self._closed = False
        self.stderr = b""
        self._drain = asyncio.create_task(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        # Read so the channel window never fills; keep the start for diagnosis.
        with contextlib.suppress(Exception):
            while chunk := await self.proc.proc.stderr.read(4096):
                self.stderr = (self.stderr + chunk)[:2000]

    def alive(self) -> bool:
        return not self._closed and self.proc.alive() and not self.proc.proc.stdout.at_eof()

    def abandon(self) -> None:
        """Never reuse this stream (the next request closes it and opens a new one)."""
        self._closed = True

    async def close(self) -> None:
        self._closed = True
        self._drain.cancel()
        await asyncio.gather(self._drain, return_exceptions=True)
        await self.proc.close()

    async def _fill(self) -> None:
        chunk = await self.proc.proc.stdout.read(65536)
        if not chunk:
            raise EngineProtocolError("the stream ended")
        self._buf += chunk

    async def _line(self) -> bytes:
        while (end := self._buf.find(b"\n")) < 0:
            if len(self._buf) > MAX_LINE:
                raise EngineProtocolError("header line too long")
            await self._fill()
        if end > MAX_LINE:
            raise EngineProtocolError("header line too long")
        line, self._buf = self._buf[:end], self._buf[end + 1 :]
        return line.rstrip(b"\r")

    async def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            await self._fill()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    async def request(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """``GET path``; the status, headers (lower-case names) and body."""
        status, headers = await self.start(path)
        body = await self._body(status, headers)
        if headers.get("connection", "").lower() == "close":
            self._closed = True
        return status, headers, body

    async def start(self, path: str) -> tuple[int, dict[str, str]]:
        """Send ``GET path`` and read the status and headers; the body is left unread."""
        head = (
            f"GET {_check_path(path)} HTTP/1.1\r\nHost: docker\r\nUser-Agent: archnest\r\n"
            "Accept: application/json\r\nConnection: keep-alive\r\n\r\n"
        )
        self.proc.proc.stdin.write(head.encode("ascii"))
        status_line = await self._line()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise EngineProtocolError(f"bad status line {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while line := await self._line():
            if len(headers) >= MAX_HEADERS:
                raise EngineProtocolError("too many headers")
            name, sep, value = line.partition(b":")
            if not sep or not name.strip():
                raise EngineProtocolError(f"bad header line {line[:80]!r}")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        if status < 200:
            raise EngineProtocolError(f"unexpected interim status {status}")
        return status, headers

    async def _body(self, status: int, headers: dict[str, str]) -> bytes:
        if status in (204, 304):
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = bytearray()
            async for piece in self.chunks():
                if len(out) + len(piece) > MAX_BODY:
                    raise EngineProtocolError("response too large")
                out += piece
            return bytes(out)
        length = headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            raise EngineProtocolError("response without a usable length")
        return await self._exactly(int(length))

    async def chunks(self) -> AsyncIterator[bytes]:
        """The pieces of a chunked body as they arrive (a big chunk in several), up to
        the last chunk and its trailers; never more than one read held at a time."""
        while True:
            m = _CHUNK.fullmatch(await self._line())
            if not m:
                raise EngineProtocolError("bad chunk size line")
            left = int(m[1], 16)
            if left == 0:
                while await self._line():  # trailers, up to the blank line
                    pass
                return
            while left:
                if not self._buf:
                    await self._fill()
                piece, self._buf = self._buf[:left], self._buf[left:]
                left -= len(piece)
                yield piece
            if await self._exactly(2) != b"\r\n":
                raise EngineProtocolError("chunk not followed by CRLF")

    async def ping(self) -> None:
        status, headers, _ = await self.request("/_ping")
        if status != 200:
            raise EngineProtocolError(f"/_ping answered {status}")
        self.version = api_version(headers.get("api-version"))

    async def get_json(self, path: str, raw: bool = False) -> Any:
        status, _, body = await self.request(path)
        if status != 200:
            raise EngineProtocolError(f"{path} answered {status}")
        if raw:
            return body
        try:
            return orjson.loads(body)
        except ValueError as exc:
            raise EngineProtocolError("unreadable JSON") from exc


class _Target:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.stream: EngineStream | None = None
        self.backoff = 0.0
        self.retry_at = 0.0


class EngineFastPath:
    """One ``EngineStream`` per target, opened on demand, with fallback and backoff."""

    def __init__(self, pool: SshPool, enabled: bool = True) -> None:
        self.pool = pool
        self.enabled = enabled
        self._targets: dict[int, _Target] = {}
        # Totals, so tests can tell which path served a request.
        self.opens = 0
        self.requests = 0
        self.failures = 0
        self.event_opens = 0

    async def close(self) -> None:
        for state in self._targets.values():
            await self._discard(state)
        self._targets.clear()

    async def forget(self, target: int) -> None:
        state = self._targets.pop(target, None)
        if state is not None:
            await self._discard(state)

    @staticmethod
    async def _discard(state: _Target) -> None:
        stream, state.stream = state.stream, None
        if stream is not None:
            await stream.close()

    def _failed(self, target: int, state: _Target, stream: EngineStream | None, exc: Exception):  # type: ignore[no-untyped-def]
        self.failures += 1
        state.backoff = min(BACKOFF_MAX, state.backoff * 2 or BACKOFF_FIRST)
        state.retry_at = time.monotonic() + state.backoff
        err = stream.stderr.decode(errors="replace").strip()[:200] if stream else ""
        log.info(
            "ssh target %s: Engine API stream unavailable (%r%s); docker CLI for %gs",
            target,
            exc,
            f": {err}" if err else "",
            state.backoff,
        )

    async def list_containers(self, target: int, sudo: bool, all: bool) -> list[dict] | None:
        """``GET /containers/json`` entries, or None: use the CLI for this request."""
        data = await self._get(target, sudo, lambda s: list_path(s.version, all))
        if not isinstance(data, list) or not all_dicts(data):
            return None
        return data

    async def stats_sample(
        self, target: int, sudo: bool, container_id: str
    ) -> tuple[int, bytes] | None:
        """``GET /containers/{ref}/stats?stream=false&one-shot=true``: the status and
        body (a 404 is an answer, not a failure of the stream), or None: the stream is
        not available. ``container_id``: hex, as the live state lists it (a path that
        is not allowed raises ValueError before anything is sent)."""
        return await self._get(
            target, sudo, lambda s: stats_path(s.version, container_id), answer=True
        )

    async def ping(self, target: int, sudo: bool) -> bool:
        """True when the target's Engine answers ``/_ping`` through the stream."""
        return await self._get(target, sudo, lambda s: "/_ping", raw=True) == b"OK"

    async def _get(
        self, target: int, sudo: bool, path_for, raw: bool = False, answer: bool = False
    ) -> Any:  # type: ignore[no-untyped-def]
        """``answer``: (status, body) of any HTTP answer; else the JSON (or raw body) of
        a 200, and any other status counts as the stream failing."""
        if not self.enabled:
            return None
        state = self._targets.setdefault(target, _Target())
        async with state.lock:
            if time.monotonic() < state.retry_at:
                return None
            for attempt in (0, 1):
                stream = state.stream
                reused = stream is not None and stream.alive() and stream.sudo == sudo
                if not reused:
                    await self._discard(state)
                    try:
                        stream = state.stream = await self._open(target, sudo)
                    except HostError:
                        return None  # the connection itself: the CLI path reports it
                    except Exception as exc:
                        self._failed(target, state, state.stream, exc)
                        await self._discard(state)
                        return None
                assert stream is not None
                try:
                    if answer:
                        status, _, body = await asyncio.wait_for(
                            stream.request(path_for(stream)), STEP_TIMEOUT
                        )
                        data = (status, body)
                    else:
                        data = await asyncio.wait_for(
                            stream.get_json(path_for(stream), raw), STEP_TIMEOUT
                        )
                except asyncio.CancelledError:
                    stream.abandon()  # a half-read answer must not meet the next request
                    raise
                except Exception as exc:
                    await self._discard(state)
                    if reused and attempt == 0:
                        continue  # it had worked: a dropped stream gets one fresh try
                    self._failed(target, state, stream, exc)
                    return None
                state.backoff = 0.0
                self.requests += 1
                self.pool.touch(target)
                return data
        return None  # pragma: no cover

    async def open_events(self, target: int, sudo: bool) -> EngineStream | None:
        """A ``dial-stdio`` process of its own for one event subscription (pinged, so its
        ``version`` is known), or None: use the CLI. The caller closes it. Connection
        failures raise (HostError): the CLI could not do better on that connection."""
        if not self.enabled:
            return None
        state = self._targets.setdefault(target, _Target())
        if time.monotonic() < state.retry_at:
            return None  # this target's dial-stdio failed lately: the CLI, without a try
        try:
            stream = await self._open(target, sudo, events=True)
        except HostError:
            raise
        except Exception as exc:
            self._failed(target, state, None, exc)
            return None
        state.backoff = 0.0
        return stream

    async def _open(self, target: int, sudo: bool, events: bool = False) -> EngineStream:
        proc = await self.pool.open_process(target, commands.dial_stdio(sudo), background=True)
        if events:
            self.event_opens += 1
        else:
            self.opens += 1
        stream = EngineStream(proc, sudo)
        try:
            await asyncio.wait_for(stream.ping(), STEP_TIMEOUT)
        except BaseException as exc:
            # Keep the stream's stderr for the log line, then close it.
            err = stream.stderr
            await stream.close()
            if isinstance(exc, Exception):
                raise EngineProtocolError(
                    f"{exc!r} {err.decode(errors='replace').strip()[:200]}"
                ) from exc
            raise
        return stream


def all_dicts(items: list) -> bool:
    return all(isinstance(i, dict) for i in items)
