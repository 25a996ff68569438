"""Managing accounts: an admin's changes to users, and the listing and revoking of API
tokens. Every change that ends a user's access says which user, so the caller can drop
that user from the :class:`~.users.CredentialCache` at once.

"No active admin left" is checked inside the changing transaction, after the change:
on PostgreSQL the active admins' rows are locked first (``FOR UPDATE``), so two admins
demoting each other at the same moment cannot both succeed; SQLite has one writer at a
time, and the count runs inside the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .db import ApiToken, Database, User, WebSession
from .errors import Conflict, NotFound
from .users import hash_password_off_loop, validate_password, validate_role


class LastAdmin(Conflict):
    code = "last_admin"


def _active_admins():  # type: ignore[no-untyped-def]
    return select(User.id).where(User.role == "admin").where(col(User.disabled).is_(False))


async def _lock_active_admins(s: AsyncSession) -> None:
    # SQLite has no row locks (SQLAlchemy leaves FOR UPDATE out there): its single
    # writer already serialises the changes.
    (await s.exec(_active_admins().with_for_update())).all()


async def _still_an_admin(s: AsyncSession) -> None:
    count = (await s.exec(select(func.count()).select_from(_active_admins().subquery()))).one()
    if count == 0:
        await s.rollback()
        raise LastAdmin("this would leave no active admin: make another user an admin first")


async def list_users(db: Database) -> list[User]:
    async with db.session() as s:
        return list((await s.exec(select(User).order_by(col(User.username)))).all())


async def get_user(s: AsyncSession, username: str) -> User:
    user = (await s.exec(select(User).where(User.username == username))).first()
    if user is None:
        raise NotFound(f"unknown user {username[:64]!r}", code="unknown_user")
    return user


async def end_sessions(s: AsyncSession, user_id: int, keep: str | None = None) -> None:
    """Delete the user's web sessions (but ``keep``, a session's token hash)."""
    stmt = delete(WebSession).where(col(WebSession.user_id) == user_id)
    if keep is not None:
        stmt = stmt.where(col(WebSession.token_hash) != keep)
    await s.exec(stmt)


async def update_user(
    db: Database,
    username: str,
    *,
    role: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
) -> User:
    """Change a user's role, disabled flag or password (None: unchanged).

    Disabling or a new password ends the user's web sessions (they sign in again);
    tokens stay and are refused while the user is disabled. 409 ``last_admin`` when no
    active admin would be left.
    """
    if role is not None:
        validate_role(role)
    password_hash = None
    if password is not None:
        password_hash = await hash_password_off_loop(validate_password(password))
    async with db.session() as s:
        await _lock_active_admins(s)
        user = await get_user(s, username)
        if role is not None:
            user.role = role
        if disabled is not None:
            user.disabled = disabled
        if password_hash is not None:
            user.password_hash = password_hash
        s.add(user)
        await s.flush()
        if disabled or password_hash is not None:
            await end_sessions(s, user.id)  # type: ignore[arg-type]
        await _still_an_admin(s)
        await s.commit()
        await s.refresh(user)
        return user


async def delete_user(db: Database, username: str) -> int:
    """Delete a user with their sessions and tokens; returns the user's id."""
    async with db.session() as s:
        await _lock_active_admins(s)
        user = await get_user(s, username)
        user_id: int = user.id  # type: ignore[assignment]
        await end_sessions(s, user_id)
        await s.exec(delete(ApiToken).where(col(ApiToken.user_id) == user_id))
        await s.delete(user)
        await s.flush()
        await _still_an_admin(s)
        await s.commit()
        return user_id


async def set_own_password(db: Database, user_id: int, password: str, keep: str | None) -> None:
    """A user's own new password: their other web sessions end, ``keep`` (the session
    the change came from, by token hash) stays signed in."""
    password_hash = await hash_password_off_loop(validate_password(password, field="new"))
    async with db.session() as s:
        user = await s.get(User, user_id)
        if user is None:
            raise NotFound("unknown user", code="unknown_user")
        user.password_hash = password_hash
        s.add(user)
        await end_sessions(s, user_id, keep=keep)
        await s.commit()


async def password_hash_of(db: Database, user_id: int) -> str | None:
    async with db.session() as s:
        user = await s.get(User, user_id)
        return user.password_hash if user else None


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    username: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


async def list_tokens(db: Database, user_id: int | None) -> list[TokenRow]:
    """The tokens of one user (None: of every user), newest first; never a secret."""
    stmt = select(ApiToken, User.username).join(User, col(User.id) == ApiToken.user_id)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    stmt = stmt.order_by(col(ApiToken.created_at).desc(), col(ApiToken.id).desc())
    async with db.session() as s:
        rows = (await s.exec(stmt)).all()
    return [
        TokenRow(t.id, t.name, name, t.created_at, t.last_used_at, t.expires_at)  # type: ignore[arg-type]
        for t, name in rows
    ]


async def revoke_token(db: Database, token_id: int, user_id: int, is_admin: bool) -> str:
    """Delete a token of ``user_id`` (an admin: of anyone); returns its hash.

    Someone else's token is 404 like a missing one, so ids tell nothing about others.
    """
    async with db.session() as s:
        row = await s.get(ApiToken, token_id)
        if row is None or (row.user_id != user_id and not is_admin):
            raise NotFound(f"unknown API token {token_id}", code="unknown_token")
        token_hash = row.token_hash
        await s.delete(row)
        await s.commit()
        return token_hash
