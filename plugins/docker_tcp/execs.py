"""Interactive exec sessions (TTY + stdin) over the Engine API's hijacked stream.

Closing the hijacked connection does not end the process: the engine keeps the shell
running with its stdin closed. So the shell is started through a one-line wrapper that
prints its in-container pid first (then ``exec``s the real shell, keeping that pid);
``close()`` sends SIGHUP - as a closing terminal would - and SIGKILL if it lingers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import aiodocker
from aiodocker.execs import Exec
from aiodocker.stream import Stream
from archnest import ExecSession, HostError

log = logging.getLogger("archnest.docker_tcp")

# $0 is the shell itself, so the wrapper needs nothing but the shell being started.
# Strong references to close tasks still running after their caller was cancelled.
_closing: set[asyncio.Task] = set()
_WRAPPER = 'echo "{marker}$$"; exec "$0"'


class DockerExecSession(ExecSession):
    def __init__(
        self,
        client: aiodocker.Docker,
        container_id: str,
        shell: str,
        execution: Exec,
        stream: Stream,
    ):
        self._client = client
        self._shell = shell
        self._container_id = container_id
        self._exec = execution
        self._stream = stream
        self._pending = b""
        self._pid: int | None = None
        self._closed = False

    @classmethod
    async def start(
        cls, client: aiodocker.Docker, container_id: str, cmd: list[str], cols: int, rows: int
    ) -> DockerExecSession:
        marker = "@archnest-" + secrets.token_hex(4) + ":"
        shell = cmd[0]
        wrapped = [shell, "-c", _WRAPPER.format(marker=marker), shell] if len(cmd) == 1 else cmd
        container = client.containers.container(container_id)
        execution = await container.exec(
            wrapped, stdin=True, tty=True, environment={"TERM": "xterm-256color"}
        )
        stream = execution.start(detach=False)
        session = cls(client, container_id, shell, execution, stream)
        try:
            await stream._init()  # opens the hijacked connection (errors surface here)
            await execution.resize(h=rows, w=cols)
            if len(cmd) == 1:
                await session._read_pid(marker.encode())
        except BaseException:
            await session.close()
            raise
        return session

    async def _read_pid(self, marker: bytes) -> None:
        buf = b""
        while marker not in buf or b"\n" not in buf.split(marker, 1)[1]:
            msg = await self._stream.read_out()
            if msg is None:
                raise HostError("the exec process ended before it started (is the shell there?)")
            buf += msg.data
            if len(buf) > 65536:
                raise HostError("unexpected output while starting the exec process")
        before, after = buf.split(marker, 1)
        digits, _, rest = after.partition(b"\n")
        self._pid = int(digits.strip() or b"0") or None
        self._pending = before + rest

    async def read(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._closed:
            return b""
        try:
            msg = await self._stream.read_out()
        except (ConnectionError, RuntimeError):
            return b""
        return msg.data if msg else b""

    async def write(self, data: bytes) -> None:
        if not self._closed and data:
            await self._stream.write_in(data)

    async def resize(self, cols: int, rows: int) -> None:
        if not self._closed:
            with contextlib.suppress(aiodocker.DockerError):
                await self._exec.resize(h=rows, w=cols)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self._stream.close()
        # The WebSocket handler is often being cancelled when it closes the session (the
        # browser went away), so ending the process runs as its own task that a
        # cancellation of the caller does not interrupt.
        task = asyncio.create_task(self._end_process_logged())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        await asyncio.shield(task)

    async def _end_process_logged(self) -> None:
        try:
            await asyncio.wait_for(self._end_process(), 10)
        except Exception as exc:  # the socket is gone either way; say what stayed behind
            log.warning("exec %s: could not end the process: %r", self._exec.id[:12], exc)

    async def running(self) -> bool:
        info = await self._exec.inspect()
        return bool(info.get("Running"))

    async def _end_process(self) -> None:
        if self._pid is None or not await self.running():
            return
        for signal in ("HUP", "KILL"):
            await self._signal(signal)
            for _ in range(20):
                if not await self.running():
                    return
                await asyncio.sleep(0.05)

    async def _signal(self, signal: str) -> None:
        container = self._client.containers.container(self._container_id)
        # The pid is an int parsed above; the signal is one of two literals.
        script = f"kill -{signal} {int(self._pid or 0)}"
        killer = await container.exec([self._shell, "-c", script], tty=False)
        await killer.start(detach=True)
