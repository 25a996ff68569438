"""Users who sign in elsewhere: an OpenID Connect provider (:mod:`.oidc_routes`) or a
reverse proxy's ``Remote-User`` / ``Remote-Groups`` headers (:func:`header_user`).

Both end here: the groups decide the role (admin groups first, then viewer groups, else
refused), and the user is created or updated by name at each sign-in. A user created
here is external: its password hash is :data:`EXTERNAL_PASSWORD`, which no password
matches, so it can sign in only the way it came. A disabled user stays disabled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from .client_address import _is_trusted, _parse_ip
from .db import Database, User
from .errors import Forbidden
from .secrets import sha256_hex
from .settings import Settings
from .users import EXTERNAL_PASSWORD, CredentialCache

REMOTE_USER = "Remote-User"
REMOTE_GROUPS = "Remote-Groups"
# What the users table accepts (users.validate_username); anything else is replaced.
_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]")


class NoRole(Forbidden):
    """Signed in at the provider, but none of the user's groups is allowed here."""

    code = "no_role"


class UserDisabled(Forbidden):
    code = "user_disabled"


def role_for_groups(settings: Settings, groups: Iterable[str]) -> str | None:
    """``admin``, ``viewer`` or None (refused) for these group names."""
    held = set(groups)
    if held & set(settings.oidc_admin_groups):
        return "admin"
    if held & set(settings.oidc_viewer_groups):
        return "viewer"
    return None


def groups_of(value: Any) -> list[str]:
    """A groups claim as providers send it: a list of names, or one comma-separated string."""
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    if isinstance(value, list | tuple):
        return [str(g) for g in value if isinstance(g, str | int)]
    return []


def external_username(claims: dict[str, Any]) -> str:
    """The local name of a provider's user: ``preferred_username``, else ``email``, else ``sub``,
    fitted to the names the users table takes."""
    for key in ("preferred_username", "email", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            name = _NOT_NAME.sub("_", value.strip())[:64]
            if name.strip("._-"):
                return name
    raise Forbidden("the provider sent no usable user name", code="no_username")


async def sign_in_external(
    db: Database,
    username: str,
    groups: Iterable[str],
    settings: Settings,
    cache: CredentialCache | None = None,
) -> User:
    """The user ``username`` with the role its groups give, created or updated now.

    :class:`NoRole` when no group is allowed, :class:`UserDisabled` for a disabled user.
    """
    role = role_for_groups(settings, groups)
    if role is None:
        raise NoRole(
            f"{username} is signed in, but none of their groups may use ArchNest; "
            "ask an administrator for access"
        )
    user = await _find(db, username)
    if user is None:
        try:
            async with db.session() as s:
                user = User(username=username, password_hash=EXTERNAL_PASSWORD, role=role)
                s.add(user)
                await s.commit()
                await s.refresh(user)
                return user
        except IntegrityError:
            # Two first sign-ins at once (two tabs, two replicas): the other one made it.
            user = await _find(db, username)
            if user is None:
                raise
    if user.disabled:
        raise UserDisabled(f"the user {username} is disabled here")
    if user.role != role:
        async with db.session() as s:
            await s.exec(update(User).where(col(User.id) == user.id).values(role=role))
            await s.commit()
        user.role = role
        if cache is not None:
            cache.forget_user(user.id)  # type: ignore[arg-type]
    return user


async def _find(db: Database, username: str) -> User | None:
    async with db.session() as s:
        return (await s.exec(select(User).where(User.username == username))).first()


def peer_is_trusted(request: web.BaseRequest, settings: Settings) -> bool:
    """Whether the direct peer (not X-Forwarded-For: anyone can write that) is a trusted proxy."""
    peer = _parse_ip(request.remote) if request.remote else None
    return peer is not None and _is_trusted(peer, settings.trusted_proxies)


async def header_user(
    request: web.Request,
    db: Database,
    settings: Settings,
    cache: CredentialCache | None,
) -> User | None:
    """The user a trusted proxy names in ``Remote-User``, or None.

    None without the header and whenever the direct peer is not a trusted proxy: from
    anyone else the headers are ignored, exactly as if they were absent.
    """
    name = request.headers.get(REMOTE_USER, "").strip()
    if not name or not settings.trusted_header_auth or not peer_is_trusted(request, settings):
        return None
    username = external_username({"preferred_username": name})
    groups = groups_of(request.headers.get(REMOTE_GROUPS, ""))
    # The proxy sends the headers on every request: a few seconds of memory per
    # (user, groups) spares the users table a read each time.
    digest = "h:" + sha256_hex(username + "\n" + ",".join(sorted(groups)))
    if cache is not None and (hit := cache.get(digest)) is not None:
        return hit
    user = await sign_in_external(db, username, groups, settings, cache)
    if cache is not None:
        cache.put(digest, user)
    return user


__all__ = [
    "NoRole",
    "UserDisabled",
    "external_username",
    "groups_of",
    "header_user",
    "peer_is_trusted",
    "role_for_groups",
    "sign_in_external",
]
