"""The ``ssh`` HostSource: SSH targets flagged ``docker`` are Docker hosts.

Every command runs the docker CLI on the host, built in ``commands``, on a channel of
the target's pooled SSH connection. Listing (and the health probe) first take the
Engine API fast path of ``engine``: one long-lived ``docker system dial-stdio`` per
target speaking HTTP/1.1 keep-alive, which spares a docker CLI start per request; rows
are normalised by the core's ``summary_from_engine_list``, as in the Engine API source.
Any failure there falls back to the CLI for that request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from archnest import (
    DB_KEY,
    Capabilities,
    Conflict,
    ContainerDetail,
    ContainerSummary,
    ExecSession,
    HostError,
    HostInfo,
    HostSource,
    LogLine,
    LogLineSplitter,
    LogOptions,
    NotFound,
    NotSupported,
    Stats,
    detail_from_inspect,
    parse_row_id,
    plugin_settings,
    summary_from_engine_list,
    validate_ref,
)
from archnest.ssh import SSH_POOL_KEY, PooledProcess, SshPool, SshResult

from . import commands
from .engine import EngineFastPath
from .events import Event, watch_events
from .parse import merge_logs, parse_ps, parse_stats
from .settings import DockerSshSettings
from .targets import docker_targets

READ_CHUNK = 65536  # bytes of a log stream read at once
_HEX_ID = re.compile(r"[0-9a-f]{12,64}")

CAPABILITIES = Capabilities(manage=True, exec=True, logs=True, stats=True, events=True)
_CONFLICT_HINTS = (
    "is not running",
    "is already paused",
    "is not paused",
    "is paused",
    "cannot remove a running container",
    "cannot kill container",
    "cannot stop container",
    "is restarting",
)


def check(result: SshResult, ref: str | None = None) -> SshResult:
    """Map a failed docker CLI run to the API error a user can act on."""
    if result.ok:
        return result
    err = result.stderr.decode(errors="replace").strip()
    low = err.lower()
    if "no such container" in low or "no such object" in low:
        raise NotFound(f"no container {ref!r} on this host", code="unknown_container")
    if "sudo:" in low and "password" in low:
        raise HostError(
            "sudo needs a password for docker; allow it with NOPASSWD", code="sudo_failed"
        )
    if "sudo" in low and "not found" in low:
        raise HostError("the target uses sudo, but sudo is not installed", code="sudo_failed")
    if result.exit_status == 127 or "command not found" in low:
        raise HostError("docker is not on the remote PATH", code="docker_missing")
    if "permission denied" in low and "docker" in low:
        raise HostError(
            "the SSH user may not use docker (add it to the docker group or set sudo)",
            code="docker_permission",
        )
    if any(hint in low for hint in _CONFLICT_HINTS):
        raise Conflict(err[:300] or "conflict", code="container_state")
    raise HostError(err[:300] or f"docker exited with status {result.exit_status}")


class SshExecSession(ExecSession):
    """``docker exec -it`` on a PTY channel of the pooled connection."""

    def __init__(self, source: SshDockerSource, target: int, ref: str, tag: str) -> None:
        self._source, self._target, self._ref, self._tag = source, target, ref, tag
        self._proc: PooledProcess | None = None
        self._closed = False
        self._cleanup: asyncio.Task | None = None
        self._nudge: asyncio.Task | None = None
        self._opened = time.monotonic()
        self._size = (80, 24)

    async def open(self, shell: str, cols: int, rows: int) -> None:
        sudo = await self._source.sudo(self._target)
        self._proc = await self._source.pool.open_process(
            self._target,
            commands.exec_tty(sudo, self._ref, shell, self._tag),
            term_type="xterm-256color",
            term_size=(cols, rows),
        )
        self._opened, self._size = time.monotonic(), (cols, rows)

    async def read(self) -> bytes:
        assert self._proc is not None
        try:
            return await self._proc.proc.stdout.read(65536)
        except Exception:
            return b""

    async def write(self, data: bytes) -> None:
        if self._proc is not None and not self._closed:
            self._proc.proc.stdin.write(data)

    async def resize(self, cols: int, rows: int) -> None:
        if self._proc is None or self._closed:
            return
        self._size = (cols, rows)
        self._proc.proc.change_terminal_size(cols, rows)
        if self._nudge is None and time.monotonic() - self._opened < 5:
            self._nudge = asyncio.create_task(self._reassert_size())

    async def _reassert_size(self) -> None:
        # The docker CLI listens for SIGWINCH only some time after output starts to
        # flow; a resize in that gap is lost, and repeating the same size sends no
        # signal (the kernel skips unchanged sizes). So an early resize is re-asserted
        # once, by a one-row wiggle, when the CLI is surely listening.
        await asyncio.sleep(1.5)
        if self._proc is None or self._closed:
            return
        cols, rows = self._size
        self._proc.proc.change_terminal_size(cols, rows + 1)
        await asyncio.sleep(0.05)
        if not self._closed:
            self._proc.proc.change_terminal_size(cols, rows)

    async def close(self) -> None:
        if self._cleanup is None:
            self._closed = True
            self._cleanup = asyncio.create_task(self._end())
        # Shielded: the WebSocket handler is often being cancelled when it closes us,
        # and the process inside the container must end regardless.
        await asyncio.shield(self._cleanup)

    async def _end(self) -> None:
        if self._nudge is not None:
            self._nudge.cancel()
        if self._proc is not None:
            await self._proc.close()
        # Closing the channel ends the docker CLI, not the process inside the
        # container: end that (and its children) by the session's tag.
        with contextlib.suppress(Exception):
            sudo = await self._source.sudo(self._target)
            await self._source.pool.run(
                self._target, commands.exec_kill(sudo, self._ref, self._tag), limit=10
            )


class SshDockerSource(HostSource):
    name = "ssh"
    label = "Docker over SSH"
    capabilities = CAPABILITIES

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._engine: EngineFastPath | None = None
        self.cli_runs = 0  # docker CLI commands run (tests tell the paths apart)

    @property
    def pool(self) -> SshPool:
        return self._app[SSH_POOL_KEY]

    @property
    def engine(self) -> EngineFastPath:
        pool = self.pool
        if self._engine is None or self._engine.pool is not pool:
            enabled = plugin_settings(self._app, DockerSshSettings).engine_api
            self._engine = EngineFastPath(pool, enabled=enabled)
        return self._engine

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.close()

    @staticmethod
    def target(key: str) -> int:
        return parse_row_id(key, "ssh host")

    async def sudo(self, target: int) -> bool:
        # This plugin's fields ride on the pooled connection's spec, so they are read
        # once per connection and re-read when the target changes (the pool forgets it).
        extra = (await self.pool.spec(target)).extra
        if not extra.get("docker"):
            raise NotFound(f"ssh target {target} is not a docker host", code="unknown_host")
        return bool(extra.get("sudo"))

    async def docker(self, key: str, build, *args, ref: str | None = None, **kw) -> SshResult:  # type: ignore[no-untyped-def]
        """Run one command built by ``commands`` and check its outcome."""
        target = self.target(key)
        if ref is not None:
            validate_ref(ref)  # refused before the pool is touched, not just before the run
        sudo = await self.sudo(target)
        self.cli_runs += 1
        return check(await self.pool.run(target, build(sudo, *args, **kw)), ref)

    async def list_hosts(self) -> list[HostInfo]:
        return [
            HostInfo(
                id=self.host_id(t.id),  # type: ignore[arg-type]
                source=self.name,
                name=t.name,
                capabilities=CAPABILITIES,
                details={"host": t.host, "port": t.port, "username": t.username, "jump": t.jump},
            )
            for t in await docker_targets(self._app[DB_KEY])
        ]

    async def probe(self, key: str) -> None:
        target = self.target(key)
        if not await self.engine.ping(target, await self.sudo(target)):
            await self.docker(key, commands.version)

    async def list_containers(self, key: str, all: bool = False) -> list[ContainerSummary]:
        target = self.target(key)
        items = await self.engine.list_containers(target, await self.sudo(target), all)
        if items is not None:
            return [summary_from_engine_list(item, self.host_id(key)) for item in items]
        result = await self.docker(key, commands.ps, all)
        return parse_ps(result.stdout, self.host_id(key))

    async def _inspect(self, key: str, ref: str) -> dict:
        result = await self.docker(key, commands.inspect, ref, ref=ref)
        try:
            data = json.loads(result.stdout)[0]
        except (ValueError, IndexError, KeyError) as exc:
            raise HostError("docker inspect returned unreadable output") from exc
        if not isinstance(data, dict):
            raise HostError("docker inspect returned unreadable output")
        return data

    async def get_container(self, key: str, ref: str) -> ContainerDetail:
        # Inspect alone: `docker stats --no-stream` takes about two seconds (see stats).
        return detail_from_inspect(await self._inspect(key, ref), self.host_id(key), None)

    async def stats(self, key: str, ref: str) -> Stats | None:
        # Both at once: the sample's two seconds dominate; inspect says whether the
        # container runs (`docker stats` shows zeros, not an error, for a stopped one)
        # and is the one whose error (e.g. no such container) is reported.
        inspect, sample = await asyncio.gather(
            self._inspect(key, ref),
            self.docker(key, commands.stats, ref, ref=ref),
            return_exceptions=True,
        )
        if isinstance(inspect, BaseException):
            raise inspect
        if not (inspect.get("State") or {}).get("Running"):
            return None
        stats = None
        if not isinstance(sample, BaseException):
            stats = parse_stats(sample.stdout.decode(errors="replace").strip())
        if stats is None or not stats.pids:
            # A container that stopped or went away during the sample reads as zeros, or
            # the CLI fails with a bare "EOF": ask again what it is (404 when gone).
            if not ((await self._inspect(key, ref)).get("State") or {}).get("Running"):
                return None
            if isinstance(sample, BaseException):
                raise sample
            if stats is None:
                raise HostError("docker stats returned unreadable output")
        return stats

    async def stats_sample(self, key: str, ref: str) -> dict[str, Any] | None:
        # Only through the Engine API stream: the CLI has no one-shot sample (`docker
        # stats --no-stream` waits for its second reading), so without the stream the
        # collector falls back to stats().
        if not _HEX_ID.fullmatch(ref):  # the collector passes the live state's ids
            raise NotSupported("one-shot samples are taken by container id")
        target = self.target(key)
        got = await self.engine.stats_sample(target, await self.sudo(target), ref)
        if got is None:
            raise NotSupported("the Engine API stream is not available on this host")
        status, body = got
        if status == 404:
            raise NotFound(f"no container {ref!r}", code="unknown_container")
        if status != 200:
            raise HostError(f"the engine answered {status} to a stats sample")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise HostError("the engine's stats sample is unreadable") from exc
        return data if isinstance(data, dict) else None

    async def logs(self, key: str, ref: str, options: LogOptions) -> list[LogLine]:
        result = await self.docker(
            key,
            commands.logs,
            ref,
            tail=options.tail,
            since=options.since,
            until=options.until,
            ref=ref,
        )
        return merge_logs(result.stdout, result.stderr, timestamps=options.timestamps)

    def stream_logs(self, key: str, ref: str, options: LogOptions) -> AsyncIterator[LogLine | None]:
        # The download: stdout and stderr arrive on separate SSH streams and are passed
        # on as they come (a sort would hold the whole log), each stream in its order.
        return self._stream(key, ref, options, follow=False)

    def follow_logs(self, key: str, ref: str, options: LogOptions) -> AsyncIterator[LogLine | None]:
        return self._stream(key, ref, options, follow=True)

    async def _stream(
        self, key: str, ref: str, options: LogOptions, follow: bool
    ) -> AsyncIterator[LogLine | None]:
        await self.docker(key, commands.container_id, ref, ref=ref)  # NotFound before streaming
        target = self.target(key)
        cmd = commands.logs(
            await self.sudo(target),
            ref,
            tail=options.tail,
            since=options.since,
            until=options.until,
            follow=follow,
        )
        # Batches of lines, not lines: one read of the channel (up to 64 KiB, hundreds
        # of lines) costs one await here and one in the consumer. The bound (batches)
        # holds a slow reader's backlog to a few MiB per stream.
        queue: asyncio.Queue[list[LogLine] | None] = asyncio.Queue(maxsize=32)
        # commands.logs always asks for --timestamps (merged reads sort by them).
        splitter = LogLineSplitter(options.timestamps, stamped=True)

        async def pump(reader, stream: str) -> None:  # type: ignore[no-untyped-def]
            try:
                while data := await reader.read(READ_CHUNK):
                    lines = splitter.feed(stream, data)
                    if lines:
                        await queue.put(lines)
                rest = splitter.flush(stream)
                if rest:
                    await queue.put(rest)
            finally:
                await queue.put(None)

        async with self.pool.process(target, cmd) as proc:
            # The channel is open (a full pool is a 429 before any header is sent).
            yield None
            tasks = [
                asyncio.create_task(pump(proc.proc.stdout, "stdout")),
                asyncio.create_task(pump(proc.proc.stderr, "stderr")),
            ]
            try:
                open_streams = 2
                while open_streams:
                    batch = await queue.get()
                    if batch is None:
                        open_streams -= 1
                    else:
                        for line in batch:
                            yield line
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def events(self, key: str) -> AsyncIterator[Event | None]:
        # Its own dial-stdio process (else `docker events`) on the pooled connection,
        # a background channel that takes no command or stream slot (events.py).
        target = self.target(key)
        sudo = await self.sudo(target)
        stream = watch_events(self.engine, target, sudo, commands.events(sudo), check)
        async with contextlib.aclosing(stream):
            async for event in stream:
                yield event

    async def action(self, key: str, ref: str, action: str, *, force: bool = False) -> None:
        await self.docker(key, commands.action, ref, action, force=force, ref=ref)

    async def exec(
        self, key: str, ref: str, cmd: list[str], *, cols: int = 80, rows: int = 24
    ) -> ExecSession:
        validate_ref(ref)
        if len(cmd) != 1 or cmd[0] not in commands.SHELLS:
            raise HostError("only an interactive shell can be started")
        await self.docker(key, commands.container_id, ref, ref=ref)
        session = SshExecSession(self, self.target(key), ref, secrets.token_hex(16))
        await session.open(cmd[0], cols, rows)
        return session
