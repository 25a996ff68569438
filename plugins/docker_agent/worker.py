"""The agent ingest in a process of its own (``ARCHNEST_AGENT_INGEST_WORKER=1``, SQLite).

One Python process runs one thread of Python at a time: under a heavy agent load the
event loop's thread, which reads, validates and normalises every report, is the limit
while the machine's other cores idle (docs/performance.md, "Agent ingest"). With this
setting the app starts ``python -m archnest_docker_agent.worker <database URL>`` and
hands it each report's body: the worker validates, normalises and stores it (the
same :func:`.routes.report_row`, :class:`.normalise.ContainerCache` and
:class:`.store.ReportStore` as in-process), and answers with what the app needs for
the live view and the stats history. The app keeps HTTP, authentication and every read.

Only for a SQLite file: one process owns the writes to it, and the worker becomes that
process for the reports (the app's own store only reads and forgets). With PostgreSQL,
several app replicas are the way to more ingest.

The two talk over the worker's stdin and stdout: frames of a 4-byte big-endian length
and a msgpack array, ``[seq, kind, ...]`` each way, answered by ``seq``. The worker is
one thread: it reads every message already sent, handles them, stores the batch's
reports in one transaction (the group commit) and answers them all. Its pipes are
enlarged to 1 MiB so that a batch can hold several reports (~80 kB each for 50
containers) while the previous one is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import select
import signal
import sys
from typing import Any

import msgspec
from aiohttp import web
from archnest import ApiError, ContainerSummary, Forbidden, tune_interpreter

log = logging.getLogger("archnest.docker_agent")

_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder()
_HEADER = 4
# A report is at most ARCHNEST_AGENT_MAX_REPORT_BYTES (5 MiB by default); a frame also
# carries the answer's summaries. Anything larger is a broken stream.
MAX_FRAME = 256 * 1024 * 1024
# Linux's default limit for an unprivileged process (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1024 * 1024


class WorkerGone(Exception):
    """The worker ended (or was restarted) before it answered."""


async def _read_frame(reader: asyncio.StreamReader) -> list[Any] | None:
    try:
        head = await reader.readexactly(_HEADER)
        size = int.from_bytes(head, "big")
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes")
        return _DECODE.decode(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


def _frame(message: list[Any]) -> bytes:
    data = _ENCODE.encode(message)
    return len(data).to_bytes(_HEADER, "big") + data


# ---- the app's side ------------------------------------------------------------------


class IngestWorker:
    """The app's handle on its ingest worker process (started again if it ends)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        # Per host, the list rows of its latest report as the worker last sent them
        # (it sends them when a container's state, name or status changed): the stats
        # history takes the names and states of the running containers from here.
        self.shown: dict[str, list[ContainerSummary]] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[list[Any]]] = {}
        self._seq = itertools.count(1)
        self._lock = asyncio.Lock()
        self.starts = 0

    async def start(self) -> None:
        async with self._lock:
            if self._proc is not None and self._proc.returncode is None and self._alive():
                return
            await self._stop_process()
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "archnest_docker_agent.worker",
                self.database_url,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=MAX_FRAME,
            )
            self.starts += 1
            # A report is larger than a pipe's default 64 KiB: with a larger pipe the
            # app can hand over the next reports while the worker stores a batch, and
            # the worker reads them as one batch (one transaction) instead of one by one.
            for pipe in (self._proc.stdin, self._proc.stdout):
                transport = getattr(pipe, "transport", None) or getattr(pipe, "_transport", None)
                fd = transport.get_extra_info("pipe").fileno() if transport else None
                if fd is not None:
                    with contextlib.suppress(OSError):
                        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            self._reader = asyncio.create_task(self._read(self._proc), name="agent-worker-read")
            # The worker answers this once it can take reports (its imports and the
            # store started): the first reports do not wait behind a cold start.
            ready = await self._send(["ready"])
            if ready != ["ok"]:
                raise RuntimeError(f"agent ingest worker did not start: {ready!r}")

    def _alive(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def report(self, body: bytes, enrolled: str | None) -> list[Any]:
        """Validate, normalise and store a report; the worker's answer (see _serve)."""
        return await self._call(["report", body, enrolled])

    async def forget(self, host: str) -> None:
        self.shown.pop(host, None)
        await self._call(["forget", host])

    async def _call(self, message: list[Any]) -> list[Any]:
        if self._proc is None or self._proc.returncode is not None or not self._alive():
            await self.start()
        return await self._send(message)

    async def _send(self, message: list[Any]) -> list[Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        seq = next(self._seq)
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[seq] = fut
        try:
            proc.stdin.write(_frame([seq, *message]))
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(seq, None)
            raise WorkerGone(f"agent ingest worker: {exc}") from None
        return await fut

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while (answer := await _read_frame(proc.stdout)) is not None:
                fut = self._pending.pop(answer[0], None)
                if fut is not None and not fut.done():
                    fut.set_result(answer[1:])
        except (ValueError, msgspec.DecodeError, OSError) as exc:
            log.error("agent ingest worker: unreadable answer (%s); restarting it", exc)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        finally:
            pending, self._pending = self._pending, {}
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(WorkerGone("agent ingest worker ended"))

    async def close(self) -> None:
        """Let the worker store what it has accepted, then end it."""
        async with self._lock:
            await self._stop_process()

    async def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()  # the worker's signal to drain and exit
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                log.error("agent ingest worker did not exit in 30 s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None


WORKER_KEY = web.AppKey("archnest_docker_agent_worker", IngestWorker)


def raise_answer(answer: list[Any]) -> None:
    """Raise what the worker's refusal of a report says (an ApiError as in-process)."""
    kind = answer[0]
    if kind == "api":
        status, code, message = answer[1:4]
        if status == 403:
            raise Forbidden(message, code=code)
        raise ApiError(message, code=code, status=status)
    if kind == "error":
        raise RuntimeError(f"agent ingest worker: {answer[1]}")


# ---- the worker's side ---------------------------------------------------------------


class _Frames:
    """Frames read from a pipe, blocking for the first of a batch only."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()
        self.closed = False

    def _fill(self, block: bool) -> None:
        if not block and not select.select([self.fd], [], [], 0)[0]:
            return
        data = os.read(self.fd, 1 << 20)
        if not data:
            self.closed = True
        self._buf += data

    def _take(self) -> list[Any] | None:
        if len(self._buf) < _HEADER:
            return None
        size = int.from_bytes(self._buf[:_HEADER], "big")
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes")
        if len(self._buf) < _HEADER + size:
            return None
        message = _DECODE.decode(memoryview(self._buf)[_HEADER : _HEADER + size])
        del self._buf[: _HEADER + size]
        return message

    def batch(self, limit: int) -> list[list[Any]]:
        """The next message (waiting for it) and every further one already sent."""
        out: list[list[Any]] = []
        while not out and not self.closed:
            message = self._take()
            if message is None:
                self._fill(block=True)
                continue
            out.append(message)
        while len(out) < limit and not self.closed:
            message = self._take()
            if message is None:
                before = len(self._buf)
                self._fill(block=False)
                if len(self._buf) == before:
                    break
                continue
            out.append(message)
        return out


def _serve(database_url: str, in_fd: int, out_fd: int) -> None:
    """Read the app's messages, answer them; reports of one read are stored in one
    transaction (the group commit, without a writer thread). Ends when stdin closes."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from .normalise import ContainerCache
    from .payload import ReportInvalid
    from .routes import no_gc_pauses, report_row
    from .store import ReportStore, sqlite_path

    engine = create_async_engine(database_url)  # for its dialect: no connection is made
    if sqlite_path(engine) is None:
        raise SystemExit("archnest_docker_agent.worker: a SQLite database file is required")
    store = ReportStore(engine)
    cache = ContainerCache()
    frames = _Frames(in_fd)
    try:
        while batch := frames.batch(limit=store.max_batch):
            answers: list[list[Any]] = []
            rows: list[tuple[int, dict[str, Any], list[Any] | None]] = []
            for message in batch:
                seq, kind = message[0], message[1]
                if kind == "report":
                    try:
                        with no_gc_pauses():
                            row, summaries = report_row(message[2], cache, message[3])
                    except ApiError as exc:
                        answers.append([seq, "api", exc.status, exc.code, exc.message])
                    except ReportInvalid as exc:  # as the in-process handler answers it
                        answers.append([seq, "api", 400, "invalid_report", str(exc)])
                    else:
                        shown = row.pop("shown_changed")
                        rows.append(
                            (seq, row, [s.model_dump() for s in summaries] if shown else None)
                        )
                elif kind == "forget":
                    cache.forget(message[2])
                    answers.append([seq, "ok"])
                elif kind == "ready":
                    answers.append([seq, "ok"])
                else:
                    answers.append([seq, "error", f"unknown message {kind!r}"])
            if rows:
                try:
                    store.write_now([row for _, row, _ in rows])
                except Exception as exc:
                    log.exception("agent ingest worker: writing %d report(s) failed", len(rows))
                    for seq, row, _ in rows:
                        cache.forget(row["host"])
                        answers.append([seq, "error", f"{type(exc).__name__}: {exc}"])
                else:
                    for seq, row, shown in rows:
                        answers.append([seq, "ok", row["host"], row["stats_json"], shown])
            view = memoryview(b"".join(_frame(answer) for answer in answers))
            while view:
                view = view[os.write(out_fd, view) :]
    finally:
        store.close_now()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m archnest_docker_agent.worker DATABASE_URL")
    # The frames own the original stdout; anything else printed goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    # The app ends the worker by closing its stdin, after the app's last report: a
    # Ctrl-C in a terminal or a service manager's SIGTERM to the whole group must not
    # end it first, in the middle of a batch the app is still waiting for.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_interpreter()  # as `archnest serve` does
    _serve(sys.argv[1], 0, out_fd)


if __name__ == "__main__":
    main()
