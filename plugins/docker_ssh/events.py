"""A host's container events, streamed over its pooled SSH connection.

Fast path: a ``docker system dial-stdio`` process of its own (``EngineFastPath.
open_events``; the shared one serves short requests and an endless answer would block
them) carries ``GET /v{ver}/events?filters={"type":["container"]}`` (a constant path),
whose chunked answer is read as it arrives and split into JSON lines. The response
head is the subscription: ``None`` is yielded once it arrived with 200.

Fallback, when ``dial-stdio`` cannot be used (an old docker, sudo refused, the fast
path off by ``ARCHNEST_SSH_ENGINE_API=0``, the target backing off after a failure):
``docker events --format '{{json .}}' --filter type=container`` (``commands.events``),
which prints the same objects. The CLI gives no sign that it has subscribed, so it
replays from a few seconds before it started (``--since``, the host's own clock) and
``None`` comes after a short settle in which a CLI that fails at once (sudo refused, no
docker, no daemon) is reported as that error instead. The replay may repeat events
that came before the subscription, in their order: the core lists after ``None``, so
applying them again converges on the same state, and none is lost.

Channels: a subscription is a *background* process of the pool. It never takes one of
the target's command slots (lists, inspects and actions queue for those), nor one of
the stream slots of followed logs and terminals, so neither starves the other; the pool
keeps a channel in reserve for it within sshd's ``MaxSessions``. A background process
alone does not hold off the connection's idle close, but a watched host is in use: the
subscription touches the connection while it runs, so the host keeps one connection
instead of reconnecting every idle period. Closing the generator (``aclose``, a
cancel) ends the remote process; a dropped connection ends it with a ``HostError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from archnest import ApiError, HostError
from archnest.ssh import PooledProcess, SshPool, SshResult

from .engine import STEP_TIMEOUT, EngineFastPath, EngineStream, events_path

MAX_EVENT = 1024 * 1024  # one event with every label of a container is a few KiB
SETTLE = 0.5  # seconds a fresh `docker events` must keep running to count as subscribed
READ = 65536

Event = dict[str, Any]


class LineSplitter:
    """Bytes in, the JSON objects of complete lines out; a line is at most MAX_EVENT."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        if b"\n" not in data:
            if len(self._buf) > MAX_EVENT:
                raise HostError("an engine event exceeds 1 MiB")
            return []
        *lines, self._buf = self._buf.split(b"\n")
        out = []
        for line in lines:
            if len(line) > MAX_EVENT:
                raise HostError("an engine event exceeds 1 MiB")
            if line.strip():
                try:
                    event = orjson.loads(line)
                except ValueError as exc:
                    raise HostError("the host sent an unreadable event") from exc
                if isinstance(event, dict):
                    out.append(event)
        return out


@contextlib.asynccontextmanager
async def _in_use(pool: SshPool, target: int) -> AsyncIterator[None]:
    """Count the subscription as use of the connection, so it is not closed as idle."""

    async def touch() -> None:
        every = max(0.5, min(30.0, pool.idle_seconds / 3))
        while True:
            pool.touch(target)
            await asyncio.sleep(every)

    task = asyncio.create_task(touch())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _failed(what: str, exc: Exception, stderr: bytes = b"") -> HostError:
    err = stderr.decode(errors="replace").strip()[:200]
    reason = str(exc) or type(exc).__name__
    return HostError(f"the event stream over SSH {what}: {reason}" + (f" ({err})" if err else ""))


async def watch_events(
    engine: EngineFastPath,
    target: int,
    sudo: bool,
    command: str,
    check: Callable[[SshResult], object],
) -> AsyncIterator[Event | None]:
    """``HostSource.events`` of one target: the fast path, else the CLI ``command``
    (``check`` turns its failure into the error a user can act on)."""
    stream = await engine.open_events(target, sudo)
    if stream is None:
        cli = _cli_events(engine.pool, target, command, check)
        async with contextlib.aclosing(cli):
            async for event in cli:
                yield event
        return
    try:
        api = _api_events(engine.pool, target, stream)
        async with contextlib.aclosing(api):
            async for event in api:
                yield event
    finally:
        await stream.close()


async def _api_events(
    pool: SshPool, target: int, stream: EngineStream
) -> AsyncIterator[Event | None]:
    # The caller closes the stream (and with it the remote process) whatever happens.
    try:
        start = stream.start(events_path(stream.version))
        status, headers = await asyncio.wait_for(start, STEP_TIMEOUT)
        if status != 200:
            raise HostError(f"the engine refused the event subscription (HTTP {status})")
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            raise HostError("the engine answered the event subscription without chunks")
        yield None
        lines = LineSplitter()
        async with _in_use(pool, target):
            async for piece in stream.chunks():
                for event in lines.feed(piece):
                    yield event
    except ApiError:
        raise
    except Exception as exc:
        raise _failed("failed", exc, stream.stderr) from exc


async def _cli_events(
    pool: SshPool, target: int, command: str, check: Callable[[SshResult], object]
) -> AsyncIterator[Event | None]:
    proc = await pool.open_process(target, command, background=True)
    stderr = bytearray()

    async def drain() -> None:
        # Read so the channel window never fills; keep the start for the error.
        with contextlib.suppress(Exception):
            while chunk := await proc.proc.stderr.read(4096):
                stderr.extend(chunk[: max(0, 2000 - len(stderr))])

    drainer = asyncio.create_task(drain())
    read: asyncio.Future[bytes] = asyncio.ensure_future(proc.proc.stdout.read(READ))
    try:
        # A CLI that fails at once (sudo, no docker, no daemon) is that error, not a
        # subscription that ends; one still running after SETTLE has subscribed.
        await asyncio.wait({read}, timeout=SETTLE)
        if not (read.done() and not read.exception() and not read.result()):
            yield None
            lines = LineSplitter()
            async with _in_use(pool, target):
                while chunk := await read:
                    read = asyncio.ensure_future(proc.proc.stdout.read(READ))
                    for event in lines.feed(chunk):
                        yield event
        await _ended(proc, drainer, stderr, check)
    except ApiError:
        raise
    except Exception as exc:
        raise _failed("failed", exc, bytes(stderr)) from exc
    finally:
        read.cancel()
        drainer.cancel()
        await asyncio.gather(read, drainer, return_exceptions=True)
        await proc.close()


async def _ended(
    proc: PooledProcess,
    drainer: asyncio.Task,
    stderr: bytearray,
    check: Callable[[SshResult], object],
) -> None:
    """The CLI's output ended: return if it exited cleanly, else raise why not."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.proc.wait_closed(), STEP_TIMEOUT)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(drainer), 1)
    status = proc.proc.exit_status
    if status is None:
        raise HostError("the event stream over SSH ended: the connection to the host was lost")
    check(SshResult(status, b"", bytes(stderr)))
