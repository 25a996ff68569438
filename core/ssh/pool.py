"""The SSH connection pool: one long-lived connection per target, many channels on it.

Every command is its own channel on the pooled connection, so a warm request costs a
channel open plus the remote command, never a TCP + key exchange + auth round trip.

Reconnect policy: when the pooled connection turns out to be gone (sshd restarted, the
network dropped, keepalive gave up), the command is retried once on a fresh connection.
Reads are idempotent. Container actions are retried too: ``docker start/stop/restart/
pause/unpause/kill/rm`` on a container already in the wanted state either succeeds or
fails with a clear "already ..." error, which is what a user would get by clicking twice.
Long-lived streams (followed logs, exec) are only retried while opening the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncssh

from ..errors import HostError, HostTimeout, TooManyRequests
from .connect import (
    ConnectSpec,
    SshUnreachable,
    close_all,
    connect_chain,
    fingerprint,
    key_line,
    scan_host_key,
)

log = logging.getLogger("archnest.ssh")

ChainLoader = Callable[[int], Awaitable[list[ConnectSpec]]]

# A lost connection shows up as any of these when a channel is opened or used. A
# ChannelOpenError on a connection that is still open is not among them: that is the
# server refusing one more channel (sshd's MaxSessions), see _refused.
_LOST = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    asyncssh.ChannelOpenError,
    BrokenPipeError,
    ConnectionResetError,
)


def _refused(exc: BaseException, conn: asyncssh.SSHClientConnection) -> HostError | None:
    """The error for a channel the server refused while the connection stays up."""
    if isinstance(exc, asyncssh.ChannelOpenError) and not conn.is_closed():
        return HostError(
            f"the SSH server refused a new channel ({exc.reason or 'no reason given'}); "
            "too many sessions on this host? (sshd MaxSessions, ARCHNEST_SSH_MAX_CHANNELS)",
            code="ssh_channel_refused",
        )
    return None


@dataclass
class SshResult:
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class _Entry:
    def __init__(self, max_commands: int) -> None:
        self.lock = asyncio.Lock()
        self.conns: list[asyncssh.SSHClientConnection] = []
        self.chain_ids: tuple[int, ...] = ()
        self.spec: ConnectSpec | None = None
        self.commands = asyncio.Semaphore(max_commands)
        self.active = 0
        self.streams = 0  # long-lived channels: followed logs, terminals
        self.connects = 0
        self.last_used = time.monotonic()

    @property
    def conn(self) -> asyncssh.SSHClientConnection | None:
        return self.conns[-1] if self.conns else None

    def alive(self) -> bool:
        return bool(self.conns) and not any(c.is_closed() for c in self.conns)


async def _open_uncancelled(
    opening: Awaitable[asyncssh.SSHClientProcess],
) -> asyncssh.SSHClientProcess:
    """Open a channel; if the caller is cancelled meanwhile (a client that went away),
    the process the server may already have started is ended, not left running."""
    task = asyncio.ensure_future(opening)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_end_orphan)
        raise


_ORPHANS: set[asyncio.Task] = set()  # referenced until done (the loop keeps weak refs)


def _end_orphan(task: asyncio.Future) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    ending = asyncio.ensure_future(_end_process(task.result()))
    _ORPHANS.add(ending)
    ending.add_done_callback(_ORPHANS.discard)


def _exited(proc: asyncssh.SSHClientProcess) -> bool:
    return proc.is_closing() or proc.returncode is not None


async def _end_process(proc: asyncssh.SSHClientProcess, *, pty: bool = False) -> None:
    """End the remote process, then its channel.

    Closing the channel alone leaves a quiet remote process (`docker logs -f` waiting
    for output) running until it next writes, so it gets a signal first. Closing right
    after the signal lost the signal now and then (a process dropped just after it
    started outlived its channel), so the channel stays open until the server reports
    the exit, the signal repeated and KILL last, each wait bounded. A terminal's shell
    ignores TERM and ends with its pty instead: one TERM for its foreground command,
    then the close, as before.

    Meanwhile its output is read and dropped: a process blocked writing to a full
    channel (a chatty log nobody reads any more) cannot finish on TERM, and the server
    reports no exit before the output ahead of it is taken.
    """
    drains = [] if pty else [asyncio.ensure_future(_discard(s)) for s in (proc.stdout, proc.stderr)]
    try:
        for sig in ("TERM",) if pty else ("TERM", "TERM", "KILL"):
            if _exited(proc):
                break
            with contextlib.suppress(Exception):
                proc.send_signal(sig)
            for _ in range(0 if pty else _EXIT_POLLS):
                await asyncio.sleep(_EXIT_POLL_SECONDS)
                if _exited(proc):
                    break
    finally:
        for drain in drains:
            drain.cancel()
        proc.close()  # also when cancelled while waiting: the channel never outlives us
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait_closed(), 5)


async def _discard(reader: asyncssh.SSHReader) -> None:
    # Any error (another reader still active, the channel gone) just ends the draining.
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


# How long one signal gets to end a process before the next is sent (0.5 s).
_EXIT_POLLS = 10
_EXIT_POLL_SECONDS = 0.05


class PooledProcess:
    """A remote process on a pooled connection; ``close()`` ends the channel."""

    def __init__(
        self,
        proc: asyncssh.SSHClientProcess,
        release: Callable[[], None],
        conn: asyncssh.SSHClientConnection | None = None,
        *,
        pty: bool = False,
    ) -> None:
        self.proc = proc
        self._release: Callable[[], None] | None = release
        self._conn = conn
        self._pty = pty

    def alive(self) -> bool:
        """False once the channel or its connection is closed (a drop, an idle close,
        a reconnect or the pool closing all end every channel on the connection)."""
        if self._release is None or self.proc.is_closing():
            return False
        return self._conn is None or not self._conn.is_closed()

    async def close(self) -> None:
        try:
            await _end_process(self.proc, pty=self._pty)
        finally:
            if self._release is not None:
                self._release()
                self._release = None


class SshPool:
    """Pooled connections keyed by target id.

    ``load_chain(target_id)`` returns the hops and the target (target last). Limits:
    ``max_channels`` channels per target in all (sshd's default MaxSessions is 10), of
    which ``max_commands`` for concurrent short commands (they wait for a free one) and
    two for the background Engine API stream and event subscription; long-lived streams
    (followed logs, terminals) get the rest and are refused with a 429 beyond it, never
    queued; connect and command timeouts; connections idle for ``idle_seconds`` are
    closed.
    """

    def __init__(
        self,
        load_chain: ChainLoader,
        *,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        keepalive: float = 15.0,
        idle_seconds: float = 300.0,
        max_commands: int = 4,
        max_channels: int = 10,
    ) -> None:
        self._load_chain = load_chain
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.keepalive = keepalive
        self.idle_seconds = idle_seconds
        self.max_commands = max_commands
        # Every channel counts against the server's per-connection limit (sshd's
        # MaxSessions, 10 by default): short commands may use ``max_commands``, two are
        # the background Engine API stream and the host's event subscription, and
        # long-lived streams get the rest, so a host whose follows are all open still
        # lists, inspects, acts and reports its events.
        self.max_channels = max_channels
        self.max_streams = max(1, max_channels - max_commands - 2)
        self._entries: dict[int, _Entry] = {}
        self._reaper: asyncio.Task | None = None
        # Totals, so tests can prove a request never reached SSH.
        self.connects = 0
        self.channels_opened = 0

    async def start(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_idle())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        for entry in self._entries.values():
            close_all(entry.conns)
            entry.conns = []
        self._entries.clear()

    def forget(self, target_id: int) -> None:
        """Close every connection that goes through ``target_id`` (after an edit/delete)."""
        for tid, entry in list(self._entries.items()):
            if target_id in entry.chain_ids or tid == target_id:
                close_all(entry.conns)
                del self._entries[tid]

    def connection_info(self, target_id: int) -> dict | None:
        """Facts about the pooled connection (local port for direct ones), or None."""
        entry = self._entries.get(target_id)
        if entry is None or not entry.alive():
            return None
        sock = entry.conns[0].get_extra_info("sockname")
        return {
            "connects": entry.connects,
            "active": entry.active,
            "streams": entry.streams,
            "hops": len(entry.conns) - 1,
            "local_port": sock[1] if sock and len(entry.conns) == 1 else None,
        }

    async def _connection(self, target_id: int) -> tuple[_Entry, asyncssh.SSHClientConnection]:
        entry = self._entries.get(target_id)
        if entry is None:
            entry = self._entries[target_id] = _Entry(self.max_commands)
        async with entry.lock:
            if not entry.alive():
                close_all(entry.conns)
                entry.conns = []
                chain = await self._load_chain(target_id)
                entry.conns = await connect_chain(
                    chain, connect_timeout=self.connect_timeout, keepalive=self.keepalive
                )
                entry.spec = chain[-1]
                entry.chain_ids = tuple(s.id for s in chain)
                entry.connects += 1
                self.connects += 1
            entry.last_used = time.monotonic()
            return entry, entry.conns[-1]

    def _drop(self, entry: _Entry, conn: asyncssh.SSHClientConnection) -> None:
        if entry.conn is conn:
            close_all(entry.conns)
            entry.conns = []

    def touch(self, target_id: int) -> None:
        """Count work done on a background process as use of the connection."""
        entry = self._entries.get(target_id)
        if entry is not None:
            entry.last_used = time.monotonic()

    async def spec(self, target_id: int) -> ConnectSpec:
        """The target's settings (sudo etc.), connecting if needed."""
        entry, _ = await self._connection(target_id)
        assert entry.spec is not None
        return entry.spec

    async def run(self, target_id: int, command: str, *, limit: float | None = None) -> SshResult:
        """Run one command on its own channel; stdout and stderr are kept apart."""
        timeout = limit or self.command_timeout
        for attempt in (0, 1):
            entry, conn = await self._connection(target_id)
            async with entry.commands:
                entry.active += 1
                proc = None
                try:
                    self.channels_opened += 1
                    proc = await _open_uncancelled(conn.create_process(command, encoding=None))
                    done = await asyncio.wait_for(proc.wait(check=False), timeout)
                    status = done.exit_status if done.exit_status is not None else -1
                    return SshResult(status, done.stdout or b"", done.stderr or b"")
                except _LOST as exc:
                    if (refused := _refused(exc, conn)) is not None:
                        raise refused from exc  # only this request fails; the rest go on
                    self._drop(entry, conn)
                    if attempt:
                        raise SshUnreachable(f"connection lost: {exc}") from exc
                    log.info("ssh target %s: connection lost, reconnecting", target_id)
                except TimeoutError as exc:
                    verb = " ".join(command.split()[:3])
                    raise HostTimeout(f"{verb!r} did not finish within {timeout:g}s") from exc
                finally:
                    if proc is not None:
                        proc.close()
                    entry.active -= 1
                    entry.last_used = time.monotonic()
        raise AssertionError("unreachable")  # pragma: no cover

    async def open_process(
        self,
        target_id: int,
        command: str,
        *,
        term_type: str | None = None,
        term_size: tuple[int, int] | None = None,
        background: bool = False,
    ) -> PooledProcess:
        """A long-lived process (followed logs, a terminal); the caller must close it.

        A ``background`` process (a helper kept open across requests) does not count as
        activity: it does not keep the connection from its idle close, and it ends with
        the connection (idle close, reconnect, ``forget``, pool close).
        """
        for attempt in (0, 1):
            entry, conn = await self._connection(target_id)
            if not background and entry.streams >= self.max_streams:
                raise TooManyRequests(
                    f"ssh target {target_id}: all {self.max_streams} channels for log follows "
                    "and terminals are in use (the rest are kept for lists and actions)",
                    code="ssh_channels_busy",
                    retry_after=5,
                )
            # Counted before the open, which yields: parallel opens cannot overshoot.
            counted = 0 if background else 1
            entry.active += counted
            entry.streams += counted
            try:
                self.channels_opened += 1
                proc = await _open_uncancelled(
                    conn.create_process(
                        command, encoding=None, term_type=term_type, term_size=term_size
                    )
                )
            except BaseException as exc:
                entry.active -= counted
                entry.streams -= counted
                if not isinstance(exc, _LOST):
                    raise
                if (refused := _refused(exc, conn)) is not None:
                    raise refused from exc
                self._drop(entry, conn)
                if attempt:
                    raise SshUnreachable(f"connection lost: {exc}") from exc
                continue

            def release(entry: _Entry = entry, counted: int = counted) -> None:
                entry.active -= counted
                entry.streams -= counted
                entry.last_used = time.monotonic()

            return PooledProcess(proc, release, conn, pty=term_type is not None)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def process(self, target_id: int, command: str) -> AsyncIterator[PooledProcess]:
        proc = await self.open_process(target_id, command)
        try:
            yield proc
        finally:
            await proc.close()

    async def scan(self, target_id: int) -> dict:
        """The key the target presents (through its pinned jump hops), trusting nothing."""
        chain = await self._load_chain(target_id)
        hops = await connect_chain(
            chain[:-1], connect_timeout=self.connect_timeout, keepalive=self.keepalive
        )
        try:
            key = await scan_host_key(
                chain[-1], hops[-1] if hops else None, connect_timeout=self.connect_timeout
            )
        finally:
            close_all(hops)
        line = key_line(key)
        pinned = chain[-1].host_keys
        return {
            "host_key": line,
            "algorithm": key.get_algorithm(),
            "fingerprint": fingerprint(key),
            "trusted": line in pinned,
            # The same answer, and the pinned fingerprints to show an old key beside a new.
            "matches": line in pinned,
            "pinned": [fingerprint(k) for k in pinned],
        }

    async def _reap_idle(self) -> None:
        interval = max(1.0, min(30.0, self.idle_seconds / 2))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for entry in list(self._entries.values()):
                idle = now - entry.last_used > self.idle_seconds
                if idle and entry.active == 0 and entry.conns and not entry.lock.locked():
                    close_all(entry.conns)
                    entry.conns = []
