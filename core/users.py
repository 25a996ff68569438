"""Users, passwords, web sessions and API tokens: how credentials are made, checked and
looked up (the policy that uses them is in :mod:`.auth`; the admin's changes to users and
the listing of tokens are in :mod:`.accounts`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, update
from sqlmodel import col, select

from .db import ApiToken, Database, User, WebSession, utcnow
from .errors import BadRequest, Conflict
from .secrets import sha256_hex

if TYPE_CHECKING:
    from .login_throttle import PasswordVerifier

ROLES = ("admin", "viewer")
SESSION_TTL = timedelta(days=7)
MIN_PASSWORD_LENGTH = 8
# A bound on what one user (any viewer may create tokens) can make the database hold.
MAX_TOKENS_PER_USER = 100
# last_used_at is for people ("used today?"): one write a minute per token at most, so
# a script polling every second does not turn every read into a database write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# The password hash of a user made by single sign-on (core/sso.py): not an argon2 hash,
# so no password ever matches it ("!" locks an account in /etc/shadow the same way).
EXTERNAL_PASSWORD = "!external"  # noqa: S105 (a marker, not a password)

# argon2id: memory-hard, the OWASP-recommended password hash.
_hasher = PasswordHasher()
# Verifying against this keeps the timing of "unknown user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("archnest-dummy-password")


def is_external(user: User) -> bool:
    """Made by single sign-on: no local password (it signs in only through the provider)."""
    return user.password_hash == EXTERNAL_PASSWORD


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if password_hash is not None and password_hash.startswith("!"):
        # An external user: checked against the dummy hash so that the answer takes as
        # long as a wrong password, then refused whatever the password.
        verify_password(None, password)
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_off_loop(password: str) -> str:
    # argon2 is deliberately slow CPU work: never on the event loop.
    return await asyncio.to_thread(hash_password, password)


def validate_username(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-" for c in name):
        raise BadRequest("username must be 1-64 letters, digits, '.', '_' or '-'", field="username")
    return name


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise BadRequest(f"role must be one of {ROLES}", field="role")
    return role


def validate_password(password: str, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"password must be at least {MIN_PASSWORD_LENGTH} characters", field=field)
    return password


async def create_user(db: Database, username: str, password: str, role: str = "viewer") -> User:
    validate_username(username)
    validate_role(role)
    validate_password(password)
    password_hash = await hash_password_off_loop(password)
    async with db.session() as s:
        existing = (await s.exec(select(User).where(User.username == username))).first()
        if existing:
            raise Conflict(
                f"user {username!r} already exists", code="user_exists", field="username"
            )
        user = User(username=username, password_hash=password_hash, role=role)
        s.add(user)
        await s.commit()
        await s.refresh(user)
        return user


async def count_users(db: Database) -> int:
    async with db.session() as s:
        return len((await s.exec(select(User.id))).all())


def expiry_in(days: int | None) -> datetime | None:
    return None if days is None else utcnow() + timedelta(days=days)


async def issue_token(
    db: Database, user_id: int, name: str = "", expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new API token of ``user_id``: its row and the plain token, returned once and
    never stored (only its SHA-256 is)."""
    token = "an_" + secrets.token_urlsafe(32)
    async with db.session() as s:
        held = (
            await s.exec(
                select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id)
            )
        ).one()
        if held >= MAX_TOKENS_PER_USER:
            raise Conflict(
                f"at most {MAX_TOKENS_PER_USER} API tokens per user; revoke some first",
                code="token_limit",
            )
        row = ApiToken(
            user_id=user_id, name=name, token_hash=sha256_hex(token), expires_at=expires_at
        )
        s.add(row)
        await s.commit()
        await s.refresh(row)
    return row, token


async def create_token(
    db: Database, username: str, name: str = "", expires_in_days: int | None = None
) -> str:
    """Create an API token for ``username``; the plain token is returned once, never stored."""
    async with db.session() as s:
        user = (await s.exec(select(User).where(User.username == username))).first()
    if user is None:
        raise BadRequest(f"no user {username!r}")
    _, token = await issue_token(db, user.id, name, expiry_in(expires_in_days))  # type: ignore[arg-type]
    return token


async def authenticate(
    db: Database, username: str, password: str, verifier: PasswordVerifier | None = None
) -> User | None:
    """The user if the pair is right and the user is not disabled. Requests pass the app's
    ``PasswordVerifier``; without one (commands, one-off scripts) the check runs on the
    default executor."""
    async with db.session() as s:
        user = (await s.exec(select(User).where(User.username == username))).first()
    # The password is checked for a disabled user too: the same time and the same
    # answer as a wrong password, so a sign-in does not tell who is disabled.
    password_hash = user.password_hash if user else None
    if verifier is not None:
        ok = await verifier.verify(password_hash, password)
    else:
        ok = await asyncio.to_thread(verify_password, password_hash, password)
    return user if ok and user and not user.disabled else None


async def create_session(db: Database, user: User) -> str:
    """A new web session of ``user`` (a successful sign-in: last_login_at is now)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with db.session() as s:
        s.add(
            WebSession(
                user_id=user.id,  # type: ignore[arg-type]
                token_hash=sha256_hex(token),
                expires_at=now + SESSION_TTL,
            )
        )
        await s.exec(update(User).where(col(User.id) == user.id).values(last_login_at=now))
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


@dataclass(frozen=True)
class Credential:
    """A valid session or token: whose it is, and until when it may be remembered."""

    user: User
    expires_at: datetime | None


def _usable(user: User, expires_at: datetime | None, now: datetime) -> bool:
    return not user.disabled and (expires_at is None or expires_at > now)


async def session_credential(db: Database, token: str) -> Credential | None:
    # Lookup by the sha256 of the token: the secret itself is never compared byte by byte.
    async with db.session() as s:
        row = (
            await s.exec(
                select(User, WebSession.expires_at)
                .join(WebSession, col(WebSession.user_id) == User.id)
                .where(WebSession.token_hash == sha256_hex(token))
            )
        ).first()
    if row is None or not _usable(row[0], row[1], utcnow()):
        return None
    return Credential(row[0], row[1])


async def token_credential(db: Database, token: str) -> Credential | None:
    async with db.session() as s:
        row = (
            await s.exec(
                select(User, ApiToken)
                .join(ApiToken, col(ApiToken.user_id) == User.id)
                .where(ApiToken.token_hash == sha256_hex(token))
            )
        ).first()
    now = utcnow()
    if row is None or not _usable(row[0], row[1].expires_at, now):
        return None
    user, api_token = row
    if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_RESOLUTION:
        await touch_token(db, api_token.id, now)  # type: ignore[arg-type]
    return Credential(user, api_token.expires_at)


async def touch_token(db: Database, token_id: int, now: datetime) -> None:
    """Set last_used_at unless another request (or replica) did within the last minute."""
    cutoff = now - LAST_USED_RESOLUTION
    async with db.session() as s:
        await s.exec(
            update(ApiToken)
            .where(col(ApiToken.id) == token_id)
            .where(or_(col(ApiToken.last_used_at).is_(None), col(ApiToken.last_used_at) < cutoff))
            .values(last_used_at=now)
        )
        await s.commit()


async def user_from_session(db: Database, token: str) -> User | None:
    found = await session_credential(db, token)
    return found.user if found else None


async def user_from_token(db: Database, token: str) -> User | None:
    found = await token_credential(db, token)
    return found.user if found else None


class CredentialCache:
    """A few seconds of memory for successful credential lookups (sha256 -> user).

    Every API request would otherwise pay a database round trip just to authenticate.
    Only hits are cached, so a new token works at once. What this replica changes is
    forgotten at once: a logout (``forget``), a revoked token, and a user disabled,
    deleted, demoted or given a new password (``forget_user``). A change made on another
    replica reaches this one within ``ttl`` seconds. An entry never outlives the
    credential's own expiry.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000):
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[str, tuple[float, User]] = {}  # digest -> (deadline, user)

    def get(self, digest: str) -> User | None:
        hit = self._entries.get(digest)
        if hit is None:
            return None
        if time.monotonic() >= hit[0]:
            self._entries.pop(digest, None)
            return None
        return hit[1]

    def put(self, digest: str, user: User, expires_at: datetime | None = None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude but bounded; a refill costs one query each
        keep = self.ttl
        if expires_at is not None:
            keep = min(keep, (expires_at - utcnow()).total_seconds())
        self._entries[digest] = (time.monotonic() + keep, user)

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def forget_user(self, user_id: int) -> None:
        """Drop every session and token of one user (a scan: admins' changes are rare)."""
        for digest in [d for d, (_, u) in self._entries.items() if u.id == user_id]:
            self._entries.pop(digest, None)


async def _cached(
    cache: CredentialCache | None,
    prefix: str,
    token: str,
    lookup: Callable[[Database, str], Awaitable[Credential | None]],
    db: Database,
) -> User | None:
    digest = prefix + sha256_hex(token)
    if cache is not None and (user := cache.get(digest)) is not None:
        return user
    found = await lookup(db, token)
    if found is None:
        return None
    if cache is not None:
        cache.put(digest, found.user, found.expires_at)
    return found.user
