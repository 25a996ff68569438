"""Users, passwords, web sessions and API tokens: how credentials are made, checked and
looked up (the policy that uses them is in :mod:`.auth`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import select

from .db import ApiToken, Database, User, WebSession, utcnow
from .errors import BadRequest, Conflict
from .secrets import sha256_hex

if TYPE_CHECKING:
    from .login_throttle import PasswordVerifier

ROLES = ("admin", "viewer")
SESSION_TTL = timedelta(days=7)

# argon2id: memory-hard, the OWASP-recommended password hash.
_hasher = PasswordHasher()
# Verifying against this keeps the timing of "unknown user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("archnest-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def validate_username(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-" for c in name):
        raise BadRequest("username must be 1-64 letters, digits, '.', '_' or '-'")
    return name


async def create_user(db: Database, username: str, password: str, role: str = "viewer") -> User:
    validate_username(username)
    if role not in ROLES:
        raise BadRequest(f"role must be one of {ROLES}")
    if len(password) < 8:
        raise BadRequest("password must be at least 8 characters")
    async with db.session() as s:
        existing = (await s.exec(select(User).where(User.username == username))).first()
        if existing:
            raise Conflict(f"user {username!r} already exists")
        user = User(username=username, password_hash=hash_password(password), role=role)
        s.add(user)
        await s.commit()
        await s.refresh(user)
        return user


async def count_users(db: Database) -> int:
    async with db.session() as s:
        return len((await s.exec(select(User.id))).all())


async def create_token(db: Database, username: str, name: str = "") -> str:
    """Create an API token for ``username``; the plain token is returned once, never stored."""
    token = "an_" + secrets.token_urlsafe(32)
    async with db.session() as s:
        user = (await s.exec(select(User).where(User.username == username))).first()
        if user is None:
            raise BadRequest(f"no user {username!r}")
        s.add(ApiToken(user_id=user.id, name=name, token_hash=sha256_hex(token)))  # type: ignore[arg-type]
        await s.commit()
    return token


async def authenticate(
    db: Database, username: str, password: str, verifier: PasswordVerifier | None = None
) -> User | None:
    """The user if the pair is right. Requests pass the app's ``PasswordVerifier``;
    without one (commands, one-off scripts) the check runs on the default executor."""
    async with db.session() as s:
        user = (await s.exec(select(User).where(User.username == username))).first()
    # argon2 is deliberately slow CPU work: always off the event loop.
    password_hash = user.password_hash if user else None
    if verifier is not None:
        ok = await verifier.verify(password_hash, password)
    else:
        ok = await asyncio.to_thread(verify_password, password_hash, password)
    return user if ok and user else None


async def create_session(db: Database, user: User) -> str:
    token = secrets.token_urlsafe(32)
    async with db.session() as s:
        s.add(
            WebSession(
                user_id=user.id,  # type: ignore[arg-type]
                token_hash=sha256_hex(token),
                expires_at=utcnow() + SESSION_TTL,
            )
        )
        await s.commit()
    return token


async def delete_session(db: Database, token: str) -> None:
    async with db.session() as s:
        row = (
            await s.exec(select(WebSession).where(WebSession.token_hash == sha256_hex(token)))
        ).first()
        if row:
            await s.delete(row)
            await s.commit()


async def _user_and_credential(
    db: Database, model: type[WebSession] | type[ApiToken], token: str
) -> tuple[User, Any] | None:
    # Lookup by the sha256 of the token: the secret itself is never compared byte by byte.
    async with db.session() as s:
        return (
            await s.exec(
                select(User, model)
                .join(model, model.user_id == User.id)  # type: ignore[arg-type]
                .where(model.token_hash == sha256_hex(token))
            )
        ).first()


async def user_from_session(db: Database, token: str) -> User | None:
    row = await _user_and_credential(db, WebSession, token)
    if row is None:
        return None
    user, sess = row
    return user if sess.expires_at > utcnow() else None


async def user_from_token(db: Database, token: str) -> User | None:
    row = await _user_and_credential(db, ApiToken, token)
    return row[0] if row else None


class CredentialCache:
    """A few seconds of memory for successful credential lookups (sha256 -> user).

    Every API request would otherwise pay a database round trip just to authenticate.
    Only hits are cached, so a new token works at once; a logout on this replica is
    forgotten at once; a token deleted elsewhere stops working within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000):
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[str, tuple[float, User]] = {}

    def get(self, digest: str) -> User | None:
        hit = self._entries.get(digest)
        if hit is None:
            return None
        if time.monotonic() - hit[0] > self.ttl:
            self._entries.pop(digest, None)
            return None
        return hit[1]

    def put(self, digest: str, user: User) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude but bounded; a refill costs one query each
        self._entries[digest] = (time.monotonic(), user)

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)


async def _cached(
    cache: CredentialCache | None,
    prefix: str,
    token: str,
    lookup: Callable[[Database, str], Awaitable[User | None]],
    db: Database,
) -> User | None:
    digest = prefix + sha256_hex(token)
    if cache is not None and (user := cache.get(digest)) is not None:
        return user
    user = await lookup(db, token)
    if user is not None and cache is not None:
        cache.put(digest, user)
    return user
