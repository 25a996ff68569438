"""Async database engine (SQLite by default, PostgreSQL for replicas) and core tables."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from .errors import ApiError
from .files import PRIVATE_FILE, create_private_file, tighten

log = logging.getLogger("archnest.db")


def utcnow() -> datetime:
    """Timezone-aware UTC; columns are ``timestamp with time zone``."""
    return datetime.now(UTC)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    password_hash: str
    role: str = Field(default="viewer", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    # A disabled user cannot sign in; their sessions and tokens are refused.
    disabled: bool = Field(default=False)
    last_login_at: datetime | None = None


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str = Field(default="", max_length=128)
    # sha256 of the token: a leaked database does not leak usable tokens.
    token_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    # Written at most once a minute per token (users.touch_token), not per request.
    last_used_at: datetime | None = None
    expires_at: datetime | None = None  # None: never expires


class WebSession(SQLModel, table=True):
    __tablename__ = "web_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


# A server that is restarting refuses at once; this bounds one that does not answer.
CONNECT_TIMEOUT_SECONDS = 5.0
# SQLSTATE of a server that is away: connection exceptions (08...), and an
# administrator's or a crash's shutdown, or "the database system is starting up" (57P0x).
_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03")


class DatabaseUnavailable(ApiError):
    """The database server cannot be reached or dropped the connection (a restart, the
    network): 503, and the same request succeeds once it is back."""

    status, code = 503, "database_unavailable"
    retry_after = 5


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OSError):  # refused, reset, timed out (TimeoutError is an OSError)
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(state, str) and state.startswith(_OUTAGE_STATES)


def _outages_are_unavailable(engine: AsyncEngine) -> None:
    """Turn "the server is away" into :class:`DatabaseUnavailable` wherever the engine is
    used (sessions, the agent store's connections, the auth lookup), so a request during a
    restart gets a clear 503 instead of an internal error; other errors pass unchanged."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(dialect, _record, cargs, cparams):  # type: ignore[no-untyped-def]
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if not _is_outage(exc):
                raise
            log.warning("database unavailable: %s", type(exc).__name__)
            raise DatabaseUnavailable("the database is unavailable; try again shortly") from exc

    @event.listens_for(engine.sync_engine, "handle_error")
    def lost(context) -> None:  # type: ignore[no-untyped-def]
        # A failed pre-ping must reach the pool, which then reconnects.
        if context.is_pre_ping:
            return
        if context.is_disconnect or _is_outage(context.original_exception):
            raise DatabaseUnavailable(
                "the database connection was lost; try again shortly"
            ) from context.original_exception


class Database:
    """Owns the engine; ``session()`` yields an AsyncSession bound to it."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        kwargs: dict = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
            prepare_sqlite_file(url)
        else:
            # pre_ping: a pooled connection that died with a server restart is replaced
            # on checkout; the connect timeout bounds a request while the server is away.
            kwargs.update(
                pool_size=10,
                max_overflow=20,
                pool_pre_ping=True,
                connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            _outages_are_unavailable(self.engine)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def prepare_sqlite_file(url: str) -> Path | None:
    """Create the SQLite database file with mode 0600 before SQLite opens it.

    SQLite itself creates a missing database with 0644 (less the umask): readable by
    every local user, and it holds password hashes, session hashes and the encrypted
    credentials. The WAL and shared-memory files copy the database file's mode. An
    existing database, or one of those files, with a looser mode is tightened with a
    warning. Returns the path, or None for an in-memory or URI-style database.
    """
    parsed = make_url(url)
    name = parsed.database
    if not name or name == ":memory:" or name.startswith("file:") or parsed.query.get("uri"):
        return None
    path = Path(name)
    create_private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix), PRIVATE_FILE)
    return path


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers proceed while the agent ingest writes; busy_timeout avoids
    # "database is locked" under concurrent writers.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
