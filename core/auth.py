"""The route-table authorisation policy and the middleware that enforces it.

Policy (enforced in one middleware, checked by a test that walks the router):
GET/HEAD/OPTIONS need any signed-in user; every other method and every handler marked
``@websocket`` or ``@admin_only`` (the Settings pages: viewers never see them) needs an
admin; handlers marked ``@self_service`` act only on the caller's own account (own
password, own API tokens) and need any signed-in user whatever their method; handlers
marked ``@public`` do their own checks (login, the agent ingest with its own token).
Cookie-authenticated (and proxy-header-authenticated) unsafe requests and WebSockets
must come from the same origin.
Credentials themselves: :mod:`.users`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from .db import Database, User
from .errors import Forbidden, Unauthorized
from .users import CredentialCache, _cached, session_credential, token_credential

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "archnest_session"
USER_KEY = web.RequestKey("archnest_user", User | None)
AUTH_KIND_KEY = web.RequestKey("archnest_auth_kind", str | None)

H = TypeVar("H", bound=Callable[..., Any])


def public(handler: H) -> H:
    """Mark a handler as doing its own authentication (no user required)."""
    handler.__archnest_public__ = True  # type: ignore[attr-defined]
    return handler


def websocket(handler: H) -> H:
    """Mark a WebSocket handler: admin-only and same-origin checked, whatever its method."""
    handler.__archnest_websocket__ = True  # type: ignore[attr-defined]
    return handler


def admin_only(handler: H) -> H:
    """Mark a read-only handler admin-only (settings pages and lists of credentials)."""
    handler.__archnest_admin_only__ = True  # type: ignore[attr-defined]
    return handler


def self_service(handler: H) -> H:
    """Mark a handler open to any signed-in user whatever its method: it acts only on
    the caller's own account and checks ownership itself (own password, own tokens)."""
    handler.__archnest_self_service__ = True  # type: ignore[attr-defined]
    return handler


def is_admin_only(handler: Any) -> bool:
    return bool(getattr(_unwrap(handler), "__archnest_admin_only__", False))


def is_self_service(handler: Any) -> bool:
    return bool(getattr(_unwrap(handler), "__archnest_self_service__", False))


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
    if is_websocket(handler) or is_admin_only(handler):
        return "admin"
    if method.upper() not in SAFE_METHODS and not is_self_service(handler):
        return "admin"
    return "viewer"


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
    get_db: Callable[[web.Request], Database],
    cache: CredentialCache | None = None,
    header_user: Callable[[web.Request], Awaitable[User | None]] | None = None,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """``header_user``: the user a trusted reverse proxy names (core/sso.py), asked only
    when the request carries neither a token nor a valid session."""

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
            user = await _cached(cache, "t:", authz[7:].strip(), token_credential, db)
            kind = "token"
            if user is None:
                raise Unauthorized("invalid, expired or revoked API token")
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie:
                user = await _cached(cache, "s:", cookie, session_credential, db)
                kind = "session" if user else None
            if user is None and header_user is not None and role is not None:
                user = await header_user(request)
                kind = "header" if user else None
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
            # Cookies are sent by browsers cross-site; bearer tokens are not. A proxy's
            # headers ride on its own cookie: the same rule.
            if unsafe and kind in ("session", "header") and not same_origin(request):
                raise Forbidden("cross-origin request refused", code="bad_origin")
        return await handler(request)

    return auth_middleware
