"""Users, passwords, sessions, API tokens and the route-table authorisation policy.

Policy (enforced in one middleware, checked by a test that walks the router):
GET/HEAD/OPTIONS need any signed-in user; every other method and every handler marked
``@websocket`` needs an admin; handlers marked ``@public`` do their own checks (login,
the agent ingest with its own token). Cookie-authenticated unsafe requests and
WebSockets must come from the same origin.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import select

from .db import ApiToken, Database, User, WebSession, utcnow
from .errors import BadRequest, Conflict, Forbidden, Unauthorized
from .secrets import sha256_hex

if TYPE_CHECKING:
    from .login_throttle import PasswordVerifier

ROLES = ("admin", "viewer")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "archnest_session"
SESSION_TTL = timedelta(days=7)
USER_KEY = web.RequestKey("archnest_user", User | None)
AUTH_KIND_KEY = web.RequestKey("archnest_auth_kind", str | None)

# argon2id: memory-hard, the OWASP-recommended password hash.
_hasher = PasswordHasher()
# Verifying against this keeps the timing of "unknown user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("archnest-dummy-password")

H = TypeVar("H", bound=Callable[..., Any])


def public(handler: H) -> H:
    """Mark a handler as doing its own authentication (no user required)."""
    handler.__archnest_public__ = True  # type: ignore[attr-defined]
    return handler


def websocket(handler: H) -> H:
    """Mark a WebSocket handler: admin-only and same-origin checked, whatever its method."""
    handler.__archnest_websocket__ = True  # type: ignore[attr-defined]
    return handler


def is_public(handler: Any) -> bool:
    return bool(getattr(_unwrap(handler), "__archnest_public__", False))


def is_websocket(handler: Any) -> bool:
    return bool(getattr(_unwrap(handler), "__archnest_websocket__", False))


def _unwrap(handler: Any) -> Any:
    # Static routes and class-based views expose the real handler differently.
    return getattr(handler, "__func__", handler)


def required_role(method: str, handler: Any) -> str | None:
    """The role a route needs: None (public), "viewer" or "admin"."""
    if is_public(handler):
        return None
    if is_websocket(handler) or method.upper() not in SAFE_METHODS:
        return "admin"
    return "viewer"


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


def current_user(request: web.Request) -> User | None:
    """The signed-in user of this request (None on public routes without credentials)."""
    return request.get(USER_KEY)


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if referer is None:
            return False
        origin = referer
    host = request.headers.get("X-Forwarded-Host") or request.host
    for scheme in ("http://", "https://"):
        if origin == scheme + host or origin.startswith(scheme + host + "/"):
            return True
    return False


def make_auth_middleware(
    get_db: Callable[[web.Request], Database], cache: CredentialCache | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def auth_middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route
        real_handler = route.handler if route is not None else handler
        if route is not None and (
            # 404/405 system routes: let aiohttp answer them. Static CSS/JS/fonts (GET/HEAD
            # only): the login page needs them before anyone signs in. Neither needs to
            # know the user, so no credential lookup either.
            route.resource is None or isinstance(route.resource, web.StaticResource)
        ):
            return await handler(request)
        role = required_role(request.method, real_handler)
        db = get_db(request)
        user: User | None = None
        kind = None
        authz = request.headers.get("Authorization", "")
        if authz.lower().startswith("bearer ") and role is not None:
            user = await _cached(cache, "t:", authz[7:].strip(), user_from_token, db)
            kind = "token"
            if user is None:
                raise Unauthorized("invalid API token")
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie:
                user = await _cached(cache, "s:", cookie, user_from_session, db)
                kind = "session" if user else None
        request[USER_KEY] = user
        request[AUTH_KIND_KEY] = kind
        if role is not None:
            if user is None:
                if (
                    request.method == "GET"
                    and "text/html" in request.headers.get("Accept", "")
                    and not request.path.startswith("/api/")
                ):
                    # Encoded whole: a raw "&" would cut the page's own query short.
                    raise web.HTTPFound("/login?" + urlencode({"next": request.path_qs}))
                raise Unauthorized("authentication required")
            if role == "admin" and user.role != "admin":
                raise Forbidden("admin role required")
            unsafe = request.method not in SAFE_METHODS or is_websocket(real_handler)
            # Cookies are sent by browsers cross-site; bearer tokens are not.
            if unsafe and kind == "session" and not same_origin(request):
                raise Forbidden("cross-origin request refused", code="bad_origin")
        return await handler(request)

    return auth_middleware


async def read_body_limited(request: web.Request, max_bytes: int) -> bytes:
    """Read the body, refusing with 413 as soon as it exceeds ``max_bytes``.

    Checks Content-Length first, then counts while streaming so an unbounded or lying
    chunked body is never buffered whole.
    """
    from .errors import PayloadTooLarge

    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def require_json(request: web.Request, max_bytes: int = 1024 * 1024) -> dict:
    """Parse a JSON object body with a size cap; 400/413 with a clear message otherwise."""
    import json

    body = await read_body_limited(request, max_bytes)
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object", code="malformed_json")
    return data
