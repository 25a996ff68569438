"""The UI shell: Jinja2 environment with namespaced plugin templates, static files, login."""

from __future__ import annotations

import math
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import aiohttp_jinja2
import jinja2
from aiohttp import web
from pydantic import BaseModel

from .audit import note as audit_note
from .auth import SESSION_COOKIE, current_user, public, same_origin
from .bodies import read_model
from .client_address import client_address
from .db import User
from .errors import FeatureDisabled, Forbidden, TooManyRequests, Unauthorized
from .keys import (
    AUTH_CACHE_KEY,
    DB_KEY,
    PASSWORD_VERIFIER_KEY,
    PM_KEY,
    SETTINGS_KEY,
    THROTTLE_KEY,
)
from .openapi import Content, operation
from .plugin_types import Assets, NavItem
from .plugins import flatten
from .secrets import sha256_hex
from .users import SESSION_TTL, authenticate, create_session, delete_session

HERE = Path(__file__).resolve().parent
LOGIN_FAILED = "invalid username or password"
# The third-party browser files the templates load, committed in static/vendor (pinned
# by package-lock.json, listed with their hashes in static/vendor/MANIFEST.json).
VENDOR_ASSETS = (
    "htmx.min.js",
    "xterm.js",
    "xterm.css",
    "addon-fit.js",
    "asciinema-player.js",
    "asciinema-player.css",
    "uplot.js",
    "uplot.css",
)


def check_vendor_assets(static: Path) -> None:
    """SystemExit naming each vendored file missing under ``static``/vendor.

    Without them the Containers page loads but never leaves "Checking hosts…"; failing
    at startup says why instead.
    """
    vendor = static / "vendor"
    missing = [name for name in VENDOR_ASSETS if not (vendor / name).is_file()]
    if missing:
        raise SystemExit(
            f"browser assets missing from {vendor}: {', '.join(missing)}. They are committed "
            "in core/static/vendor and shipped in the wheel: reinstall from a complete "
            "checkout (pip install .), or restore them with scripts/build-static.sh"
        )


def plugin_assets(app: web.Application) -> list[Assets]:
    return flatten(app[PM_KEY].hook.archnest_assets())


def setup_templates(app: web.Application) -> None:
    check_vendor_assets(HERE / "static")
    prefixed: dict[str, jinja2.BaseLoader] = {}
    for assets in plugin_assets(app):
        if assets.templates:
            prefixed[assets.namespace] = jinja2.FileSystemLoader(str(assets.templates))
        if assets.static:
            app.router.add_static(f"/static/{assets.namespace}/", assets.static, name=None)
    loader = jinja2.ChoiceLoader(
        [jinja2.FileSystemLoader(str(HERE / "templates")), jinja2.PrefixLoader(prefixed)]
    )
    env = aiohttp_jinja2.setup(
        app, loader=loader, autoescape=jinja2.select_autoescape(default=True)
    )
    # In place of aiohttp_jinja2's context processors, which run for every request
    # before its handler (the API's and the agents' too) and tie the request into a
    # reference cycle: the base context is built when a template is rendered.
    app.middlewares.append(_template_context_middleware)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True}
    app.router.add_static("/static/core/", HERE / "static")


def nav_items(request: web.Request) -> list[NavItem]:
    user = current_user(request)
    items = flatten(request.app[PM_KEY].hook.archnest_nav_items(request=request))
    visible = [i for i in items if not i.admin_only or (user and user.role == "admin")]
    return sorted(visible, key=lambda i: (i.order, i.title))


def settings_nav(request: web.Request) -> list[NavItem]:
    """The sections of the Settings area (admins only: viewers get none)."""
    user = current_user(request)
    if not (user and user.role == "admin"):
        return []
    items = flatten(request.app[PM_KEY].hook.archnest_settings_nav(request=request))
    return sorted(items, key=lambda i: (i.order, i.title))


class _BaseContext(Mapping[str, Any]):
    """The templates' base context of one request, built on first use.

    aiohttp_jinja2 merges ``request[REQUEST_CONTEXT_KEY]`` into every template's
    context; most requests render none. The request is held weakly: it holds this
    object, so a strong reference would make every request garbage only the cyclic
    collector can free.
    """

    __slots__ = ("_request", "_values")

    def __init__(self, request: web.Request) -> None:
        self._request = weakref.ref(request)
        self._values: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._values is None:
            request = self._request()
            self._values = _base_context(request) if request is not None else {}
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


@web.middleware
async def _template_context_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request[aiohttp_jinja2.REQUEST_CONTEXT_KEY] = _BaseContext(request)
    return await handler(request)


def _base_context(request: web.Request) -> dict[str, Any]:
    user = current_user(request)
    settings = request.app[SETTINGS_KEY]
    return {
        # The sign-in page's choices (docs/sso.md).
        "sso_name": settings.oidc_name if settings.oidc_enabled else None,
        "password_login": settings.password_login,
        "user": user,
        "is_admin": bool(user and user.role == "admin"),
        "nav_items": nav_items(request) if user else [],
        "settings_nav": settings_nav(request),
        "request": request,
    }


def safe_next(value: str | None) -> str:
    # Only same-site relative paths: an open redirect would help phishing. Browsers
    # read "/\\evil.example" as "//evil.example" and drop tabs and newlines from URLs
    # ("/\t/evil.example"), so backslashes and control characters are refused too.
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return "/"
    parsed = urlparse(value)
    return value if not parsed.netloc and not parsed.scheme else "/"


def _browser_origin(request: web.Request) -> bool:
    return "Origin" in request.headers or "Referer" in request.headers


def set_session_cookie(request: web.Request, resp: web.StreamResponse, token: str) -> None:
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS_KEY].secure_cookies or request.secure,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
    )


def _password_login_off(request: web.Request) -> FeatureDisabled | None:
    if request.app[SETTINGS_KEY].password_login:
        return None
    return FeatureDisabled(
        "password sign-in is turned off here (ARCHNEST_PASSWORD_LOGIN=0): use single "
        "sign-on, or an API token from a script",
        code="password_login_disabled",
    )


async def _login(request: web.Request, username: str, password: str) -> tuple[str, User]:
    # Over budget is a 429 at once: nothing here waits on another attempt, so a flood
    # of guesses cannot hold up a sign-in from another client address.
    # The audit row names whoever was tried, whether or not the attempt succeeds.
    audit_note(request, user=username[:64])
    with request.app[THROTTLE_KEY].attempt(username, client_address(request)) as attempt:
        user = await authenticate(
            request.app[DB_KEY], username, password, request.app[PASSWORD_VERIFIER_KEY]
        )
        if user is None:
            raise Unauthorized(LOGIN_FAILED, code="bad_credentials")
        attempt.succeeded = True
    return await create_session(request.app[DB_KEY], user), user


class LoginRequest(BaseModel):
    username: str
    password: str


class LoginForm(LoginRequest):
    next: str = "/"


class SignedInUser(BaseModel):
    username: str
    role: Literal["admin", "viewer"]


class LoginResult(BaseModel):
    ok: bool
    user: SignedInUser


class LogoutResult(BaseModel):
    ok: bool


LOGIN_PAGE = Content("text/html", None, "The sign-in page.")


@public
@operation("The sign-in page", tags=("auth",), responses={200: LOGIN_PAGE})
@aiohttp_jinja2.template("core/login.html")
async def login_page(request: web.Request) -> dict[str, Any]:
    return {"next": safe_next(request.query.get("next")), "error": None}


@public
@operation(
    "Sign in from the browser form; sets the session cookie",
    tags=("auth",),
    request=Content("application/x-www-form-urlencoded", LoginForm),
    responses={
        303: None,
        401: Content("text/html", None, "The sign-in page with the error."),
        429: Content("text/html", None, "The sign-in page with the reason; see Retry-After."),
        503: Content("text/html", None, "Password sign-in is off (ARCHNEST_PASSWORD_LOGIN=0)."),
    },
    errors=(403,),
)
async def login_form(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        raise Forbidden("cross-origin login refused", code="bad_origin")
    form = await request.post()
    nxt = safe_next(str(form.get("next", "/")))
    if (off := _password_login_off(request)) is not None:
        audit_note(request, result=off.code)
        resp = aiohttp_jinja2.render_template(
            "core/login.html", request, {"next": nxt, "error": off.message}
        )
        resp.set_status(off.status)
        return resp
    try:
        token, _ = await _login(
            request, str(form.get("username", "")), str(form.get("password", ""))
        )
    except Unauthorized:
        audit_note(request, result="bad_credentials")  # the JSON route's code, not "401"
        resp = aiohttp_jinja2.render_template(
            "core/login.html", request, {"next": nxt, "error": LOGIN_FAILED}
        )
        resp.set_status(401)
        return resp
    except TooManyRequests as exc:
        # The browser form gets the page back with the reason, not a JSON error.
        resp = aiohttp_jinja2.render_template(
            "core/login.html", request, {"next": nxt, "error": exc.message}
        )
        resp.set_status(exc.status)
        resp.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after or 1)))
        return resp
    resp = web.HTTPSeeOther(nxt)
    set_session_cookie(request, resp, token)
    raise resp


@public
@operation(
    "Sign in with a JSON body; sets the session cookie",
    description="One uniform 401 for any wrong pair; repeated failures answer 429; 503 "
    "`password_login_disabled` when password sign-in is turned off (ARCHNEST_PASSWORD_LOGIN=0).",
    tags=("auth",),
    request=LoginRequest,
    responses={200: LoginResult},
    errors=(401, 403, 429, 503),
)
async def login_json(request: web.Request) -> web.Response:
    # Scripts send no Origin; a browser does, and a cross-site page must not be able to
    # sign the visitor in as someone else (login CSRF, e.g. a text/plain form post).
    if _browser_origin(request) and not same_origin(request):
        raise Forbidden("cross-origin login refused", code="bad_origin")
    if (off := _password_login_off(request)) is not None:
        raise off
    body = await read_model(request, LoginRequest, 16 * 1024)
    token, user = await _login(request, body.username, body.password)
    resp = web.json_response({"ok": True, "user": {"username": user.username, "role": user.role}})
    set_session_cookie(request, resp, token)
    return resp


@public
@operation(
    "Sign out: end the session and clear the cookie",
    description="JSON with `Accept: application/json`, otherwise a redirect to /login.",
    tags=("auth",),
    responses={200: LogoutResult, 303: None},
    errors=(403,),
)
async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        if not same_origin(request):
            raise Forbidden("cross-origin logout refused", code="bad_origin")
        await delete_session(request.app[DB_KEY], token)
        request.app[AUTH_CACHE_KEY].forget("s:" + sha256_hex(token))
    wants_json = "application/json" in request.headers.get("Accept", "")
    resp: web.StreamResponse = (
        web.json_response({"ok": True}) if wants_json else web.HTTPSeeOther("/login")
    )
    resp.del_cookie(SESSION_COOKIE, path="/")
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


@operation("The signed-in user", tags=("auth",), responses={200: SignedInUser})
async def me(request: web.Request) -> web.Response:
    user = current_user(request)
    assert user is not None  # the route policy guarantees a user
    return web.json_response({"username": user.username, "role": user.role})


def setup_auth_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_form)
    app.router.add_post("/logout", logout)
    app.router.add_post("/api/auth/login", login_json)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/auth/me", me)
