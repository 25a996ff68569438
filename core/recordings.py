"""Terminal recordings: every exec session written as asciicast v2, gzip-compressed, in
``<data_dir>/recordings/<id>.cast.gz`` (0600, the directory 0700), with a row in
``recordings`` (docs/recordings.md).

Output is always recorded (decoded as UTF-8 with replacement, escape sequences kept);
keystrokes only with ``ARCHNEST_RECORD_INPUT=1`` because they may be passwords typed
at a prompt. Events are buffered and written every second or every 64 KiB, whichever
comes first, so a session never sits in memory; a file that reaches
``ARCHNEST_RECORDING_MAX_BYTES`` (uncompressed) ends with a marker event and the
session goes on unrecorded. A daily job removes recordings older than the retention.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import gzip
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlmodel import SQLModel

from .auth import current_user
from .daily import daily
from .db import Database
from .files import PRIVATE_FILE, make_private_dir
from .keys import DB_KEY, SETTINGS_KEY

log = logging.getLogger("archnest.recordings")

FLUSH_SECONDS = 1.0
FLUSH_BYTES = 64 * 1024
ID_LENGTH = 32  # uuid4 hex
# The recording of the terminal a request opened (for whatever records the request).
RECORDING_ID_KEY = web.RequestKey("recording_id", str)

recordings = sa.Table(
    "recordings",
    SQLModel.metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user", sa.String(64), nullable=True, index=True),
    sa.Column("host_id", sa.String(160), nullable=False, index=True),
    sa.Column("container", sa.String(256), nullable=False),
    sa.Column("cmd", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("duration", sa.Float(), nullable=True),
    sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("input_recorded", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("path", sa.String(255), nullable=False),
)


def recordings_dir(data_dir: Path) -> Path:
    return data_dir / "recordings"


def is_recording_id(value: str) -> bool:
    return len(value) == ID_LENGTH and all(c in "0123456789abcdef" for c in value)


def _db_time(db: Database, moment: datetime) -> datetime:
    # SQLite stores naive UTC text: bind naive UTC there, aware elsewhere.
    return moment.replace(tzinfo=None) if db.is_sqlite else moment


class Recorder:
    """One session's recording: :meth:`wrap` the ExecSession, :meth:`close` at the end."""

    def __init__(
        self,
        db: Database,
        path: Path,
        rec_id: str,
        *,
        record_input: bool,
        max_bytes: int,
    ) -> None:
        self.db, self.path, self.id = db, path, rec_id
        self.record_input, self.max_bytes = record_input, max_bytes
        self.started = time.monotonic()
        self.bytes = 0  # uncompressed asciicast written (or buffered)
        self.stopped = False  # the size cap was reached
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._out = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._in = codecs.getincrementaldecoder("utf-8")(errors="replace")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        self._file = os.fdopen(fd, "wb")
        self._gz: gzip.GzipFile | None = gzip.GzipFile(fileobj=self._file, mode="wb")
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    def start(self, header: dict[str, Any]) -> None:
        self._append(json.dumps(header, ensure_ascii=False).encode() + b"\n")
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        # An idle terminal's last output still reaches the disk within a second.
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.flush()

    def _event(self, kind: str, data: str) -> None:
        if self.stopped or self._gz is None:
            return
        t = round(time.monotonic() - self.started, 6)
        line = json.dumps([t, kind, data], ensure_ascii=False).encode() + b"\n"
        if self.bytes + len(line) > self.max_bytes:
            self.stopped = True
            note = f"recording stopped: size limit of {self.max_bytes} bytes reached"
            self._append(json.dumps([t, "m", note]).encode() + b"\n")
            self.flush()
            return
        self._append(line)

    def _append(self, line: bytes) -> None:
        self._buffer.append(line)
        self._buffered += len(line)
        self.bytes += len(line)
        if self._buffered >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Compress what is buffered and push it to the file (a gzip sync point, so
        everything up to here can be read back even if the process dies)."""
        if not self._buffer or self._gz is None:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        try:
            self._gz.write(data)
            self._gz.flush()
        except OSError:
            log.exception("recording %s: write failed; recording stopped", self.id)
            self.stopped = True

    def output(self, data: bytes) -> None:
        text = self._out.decode(data)
        if text:
            self._event("o", text)

    def input(self, data: bytes) -> None:
        if self.record_input:
            text = self._in.decode(data)
            if text:
                self._event("i", text)

    def resize(self, cols: int, rows: int) -> None:
        self._event("r", f"{cols}x{rows}")

    def wrap(self, session: Any) -> Any:
        return _RecordedSession(session, self)

    async def close(self) -> None:
        """Write what is left, close the file and complete the row (shielded: the handler
        is often being cancelled when the browser goes away)."""
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        tail = self._out.decode(b"", final=True)
        if tail:
            self._event("o", tail)
        self.flush()
        try:
            if self._gz is not None:
                self._gz.close()
            self._file.close()
        except OSError:
            log.exception("recording %s: closing the file failed", self.id)
        self._gz = None
        duration = round(time.monotonic() - self.started, 3)
        await asyncio.shield(self._finish(duration))

    async def _finish(self, duration: float) -> None:
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(
                    sa.update(recordings)
                    .where(recordings.c.id == self.id)
                    .values(
                        ended_at=_db_time(self.db, datetime.now(UTC)),
                        duration=duration,
                        bytes=self.bytes,
                    )
                )
        except Exception:
            log.exception("recording %s: completing its row failed", self.id)


class _RecordedSession:
    """An ExecSession that copies what passes to the recorder and delegates."""

    def __init__(self, session: Any, recorder: Recorder) -> None:
        self._session, self._recorder = session, recorder

    async def read(self) -> bytes:
        data = await self._session.read()
        if data:
            self._recorder.output(data)
        return data

    async def write(self, data: bytes) -> None:
        self._recorder.input(data)
        await self._session.write(data)

    async def resize(self, cols: int, rows: int) -> None:
        self._recorder.resize(cols, rows)
        await self._session.resize(cols, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


async def start_recording(
    request: web.Request, host_id: str, container: str, cmd: list[str], cols: int, rows: int
) -> Recorder | None:
    """A new recording of the session about to be bridged, or None when recording is
    off (or the file cannot be created: the terminal still works, the failure is logged)."""
    settings = request.app[SETTINGS_KEY]
    if not settings.recordings:
        return None
    db = request.app[DB_KEY]
    rec_id = uuid.uuid4().hex
    user = current_user(request)
    now = datetime.now(UTC)
    directory = recordings_dir(settings.data_dir)
    name = f"{rec_id}.cast.gz"
    try:
        make_private_dir(directory)
        recorder = Recorder(
            db,
            directory / name,
            rec_id,
            record_input=settings.record_input,
            max_bytes=settings.recording_max_bytes,
        )
    except OSError:
        log.exception("recording: cannot create %s; this session is not recorded", name)
        return None
    try:
        async with db.engine.begin() as conn:
            await conn.execute(
                sa.insert(recordings).values(
                    id=rec_id,
                    user=user.username if user else None,
                    host_id=host_id[:160],
                    container=container[:256],
                    cmd=" ".join(cmd)[:64],
                    started_at=_db_time(db, now),
                    bytes=0,
                    input_recorded=settings.record_input,
                    path=f"recordings/{name}",
                )
            )
    except Exception:
        log.exception("recording: cannot store its row; this session is not recorded")
        await recorder.close()
        with contextlib.suppress(OSError):
            (directory / name).unlink()
        return None
    recorder.start(
        {
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": int(now.timestamp()),
            "env": {"TERM": "xterm-256color", "SHELL": " ".join(cmd)},
            "title": f"{host_id} {container}",
        }
    )
    request[RECORDING_ID_KEY] = rec_id
    return recorder


async def apply_retention(db: Database, data_dir: Path, days: int) -> int:
    """Remove recordings (file, then row) started more than ``days`` days ago."""
    cutoff = _db_time(db, datetime.now(UTC) - timedelta(days=days))
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(recordings.c.id, recordings.c.path).where(
                    recordings.c.started_at < cutoff
                )
            )
        ).all()
    gone = 0
    for row in rows:
        path = stored_path(data_dir, row.path)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        async with db.engine.begin() as conn:
            await conn.execute(sa.delete(recordings).where(recordings.c.id == row.id))
        gone += 1
    return gone


def stored_path(data_dir: Path, relative: str) -> Path | None:
    """The file of a row, never outside the recordings directory."""
    base = recordings_dir(data_dir)
    name = Path(relative).name
    if not name.endswith(".cast.gz") or not is_recording_id(name.removesuffix(".cast.gz")):
        return None
    return base / name


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """The daily recordings retention job, for ``app.cleanup_ctx``."""
    settings = app[SETTINGS_KEY]
    days = settings.recording_retention_days
    if days <= 0:
        yield
        return
    async with daily(
        f"recordings retention ({days} days)",
        lambda: apply_retention(app[DB_KEY], settings.data_dir, days),
    ):
        yield


__all__ = [
    "RECORDING_ID_KEY",
    "Recorder",
    "apply_retention",
    "is_recording_id",
    "recordings",
    "retention_ctx",
    "start_recording",
    "stored_path",
]
