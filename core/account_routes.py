"""Users and API tokens over HTTP (docs/api.md "Users and API tokens"), and the two pages
that drive them: Settings > Users (admins) and Account (every signed-in user).

Who may call what is the route table's business (:mod:`.auth`): the users routes are
admin routes (``GET /api/users`` is ``@admin_only``: it lists accounts), the caller's own
password and tokens are ``@self_service`` and check ownership here. The pages are shells;
their scripts (core/static/settings-users.js, account.js) use the same JSON API.
"""

from __future__ import annotations

from typing import Any, Literal

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from . import accounts
from .auth import AUTH_KIND_KEY, SESSION_COOKIE, admin_only, current_user, self_service
from .bodies import read_model
from .client_address import client_address
from .containers import iso_utc, parse_row_id
from .db import User
from .errors import BadRequest, Forbidden, Unauthorized
from .keys import AUTH_CACHE_KEY, DB_KEY, PASSWORD_VERIFIER_KEY, THROTTLE_KEY
from .openapi import Content, Param, operation
from .secrets import sha256_hex
from .users import create_user, expiry_in, is_external, issue_token

MAX_BODY = 16 * 1024
MAX_PASSWORD = 1024  # argon2 takes any length; this bounds the work one request asks for
PAGE = Content("text/html", None, "An HTML page.")
USERNAME = Param("username", "A user's name.")
TOKEN_ID = Param("id", "The numeric id of an API token.", type="integer")
Role = Literal["admin", "viewer"]


class UserView(BaseModel):
    """A user as the API shows it (never the password hash)."""

    username: str
    role: Role
    disabled: bool
    created_at: str | None
    last_login_at: str | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    role: Role = "viewer"
    password: str = Field(min_length=8, max_length=MAX_PASSWORD)


class UserUpdate(BaseModel):
    """Any of the fields; absent or null leaves one unchanged."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=MAX_PASSWORD)


class UserDeleted(BaseModel):
    ok: bool
    username: str


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(max_length=MAX_PASSWORD)
    new: str = Field(min_length=8, max_length=MAX_PASSWORD)


class PasswordChanged(BaseModel):
    ok: bool


class TokenView(BaseModel):
    """An API token as the API shows it: never the token itself."""

    id: int
    name: str
    username: str = Field(description="Its owner.")
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None = Field(description="null: never expires.")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="null: never expires.")


class TokenCreated(BaseModel):
    id: int
    name: str
    token: str = Field(description="The bearer token: shown this once, stored only hashed.")
    expires_at: str | None


class TokenRevoked(BaseModel):
    ok: bool
    id: int


def _user_view(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role,
        "disabled": user.disabled,
        "created_at": iso_utc(user.created_at),
        "last_login_at": iso_utc(user.last_login_at),
    }


def _signed_in(request: web.Request) -> User:
    user = current_user(request)
    assert user is not None and user.id is not None  # the route policy guarantees one
    return user


# ---- users (admins) ----


@admin_only
@operation("Users", tags=("users",), responses={200: list[UserView]})
async def list_users(request: web.Request) -> web.Response:
    users = await accounts.list_users(request.app[DB_KEY])
    return web.json_response([_user_view(u) for u in users])


@operation(
    "Add a user", tags=("users",), request=UserCreate, responses={201: UserView}, errors=(409,)
)
async def add_user(request: web.Request) -> web.Response:
    body = await read_model(request, UserCreate, MAX_BODY)
    user = await create_user(request.app[DB_KEY], body.username, body.password, body.role)
    return web.json_response(_user_view(user), status=201)


@operation(
    "Change a user's role, disabled flag or password",
    description="A change applies from the user's next request. Disabling or a new "
    "password ends the user's web sessions; a disabled user's API tokens are refused "
    "until the user is enabled again. 409 `last_admin` when no active admin would be left.",
    tags=("users",),
    request=UserUpdate,
    responses={200: UserView},
    path=(USERNAME,),
    errors=(409,),
)
async def change_user(request: web.Request) -> web.Response:
    body = await read_model(request, UserUpdate, MAX_BODY)
    user = await accounts.update_user(
        request.app[DB_KEY],
        request.match_info["username"],
        role=body.role,
        disabled=body.disabled,
        password=body.password,
    )
    request.app[AUTH_CACHE_KEY].forget_user(user.id)  # type: ignore[arg-type]
    return web.json_response(_user_view(user))


@operation(
    "Delete a user; their sessions and API tokens end at once",
    description="409 `last_admin` for the last active admin.",
    tags=("users",),
    responses={200: UserDeleted},
    path=(USERNAME,),
    errors=(409,),
)
async def remove_user(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    user_id = await accounts.delete_user(request.app[DB_KEY], username)
    request.app[AUTH_CACHE_KEY].forget_user(user_id)
    return web.json_response({"ok": True, "username": username})


# ---- the caller's own account ----


@self_service
@operation(
    "Change your own password",
    description="`current` must be your password now (400 naming `current` otherwise; "
    "repeated failures answer 429 like sign-ins). Your other web sessions end; this one "
    "and your API tokens stay.",
    tags=("auth",),
    request=PasswordChange,
    responses={200: PasswordChanged},
    errors=(403, 429),
)
async def change_own_password(request: web.Request) -> web.Response:
    user = _signed_in(request)
    body = await read_model(request, PasswordChange, MAX_BODY)
    db = request.app[DB_KEY]
    try:
        # Throttled like a sign-in: a stolen session must not become a password oracle.
        with request.app[THROTTLE_KEY].attempt(user.username, client_address(request)) as attempt:
            stored = await accounts.password_hash_of(db, user.id)  # type: ignore[arg-type]
            if not await request.app[PASSWORD_VERIFIER_KEY].verify(stored, body.current):
                raise Unauthorized("wrong current password")
            attempt.succeeded = True
    except Unauthorized:
        raise BadRequest(
            "the current password is not right", code="wrong_password", field="current"
        ) from None
    cookie = request.cookies.get(SESSION_COOKIE)
    keep = sha256_hex(cookie) if cookie and request[AUTH_KIND_KEY] == "session" else None
    await accounts.set_own_password(db, user.id, body.new, keep)  # type: ignore[arg-type]
    request.app[AUTH_CACHE_KEY].forget_user(user.id)  # type: ignore[arg-type]
    return web.json_response({"ok": True})


def _token_view(row: accounts.TokenRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "username": row.username,
        "created_at": iso_utc(row.created_at),
        "last_used_at": iso_utc(row.last_used_at),
        "expires_at": iso_utc(row.expires_at),
    }


@self_service
@operation(
    "Your API tokens (an admin's `?all=1`: every user's)",
    tags=("tokens",),
    responses={200: list[TokenView]},
    query=(Param("all", "`1`: the tokens of every user (admins only).", enum=("0", "1")),),
    errors=(400, 403),
)
async def list_tokens(request: web.Request) -> web.Response:
    user = _signed_in(request)
    every = request.query.get("all", "0")
    if every not in ("0", "1"):
        raise BadRequest("all must be 0 or 1", field="all")
    if every == "1" and user.role != "admin":
        raise Forbidden("only admins may list every user's tokens")
    rows = await accounts.list_tokens(request.app[DB_KEY], None if every == "1" else user.id)
    return web.json_response([_token_view(r) for r in rows])


@self_service
@operation(
    "Create an API token for yourself; the token is shown once",
    description="It carries your role. `expires_in_days` null: it never expires.",
    tags=("tokens",),
    request=TokenCreate,
    responses={201: TokenCreated},
    errors=(403, 409),
)
async def create_own_token(request: web.Request) -> web.Response:
    user = _signed_in(request)
    body = await read_model(request, TokenCreate, MAX_BODY)
    name = body.name.strip()
    if not name:
        raise BadRequest("name must not be blank", field="name")
    row, token = await issue_token(
        request.app[DB_KEY],
        user.id,  # type: ignore[arg-type]
        name,
        expiry_in(body.expires_in_days),
    )
    return web.json_response(
        {"id": row.id, "name": row.name, "token": token, "expires_at": iso_utc(row.expires_at)},
        status=201,
    )


@self_service
@operation(
    "Revoke an API token (your own; an admin: anyone's)",
    description="The token gets 401 from then on. Another user's token is 404, like a missing one.",
    tags=("tokens",),
    responses={200: TokenRevoked},
    path=(TOKEN_ID,),
    errors=(403,),
)
async def revoke_token(request: web.Request) -> web.Response:
    user = _signed_in(request)
    token_id = parse_row_id(request.match_info["id"], "API token", code="unknown_token")
    token_hash = await accounts.revoke_token(
        request.app[DB_KEY],
        token_id,
        user.id,  # type: ignore[arg-type]
        user.role == "admin",
    )
    request.app[AUTH_CACHE_KEY].forget("t:" + token_hash)
    return web.json_response({"ok": True, "id": token_id})


# ---- pages ----


@admin_only
@operation("Settings: users and every user's API tokens", tags=("ui",), responses={200: PAGE})
@aiohttp_jinja2.template("core/settings_users.html")
async def settings_users(request: web.Request) -> dict[str, Any]:
    return {}


@operation("Your account: password and API tokens", tags=("ui",), responses={200: PAGE})
@aiohttp_jinja2.template("core/account.html")
async def account_page(request: web.Request) -> dict[str, Any]:
    return {"external": is_external(_signed_in(request))}


def setup_account_routes(app: web.Application) -> None:
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", add_user)
    app.router.add_patch("/api/users/{username}", change_user)
    app.router.add_delete("/api/users/{username}", remove_user)
    app.router.add_post("/api/auth/password", change_own_password)
    app.router.add_get("/api/tokens", list_tokens)
    app.router.add_post("/api/tokens", create_own_token)
    app.router.add_delete("/api/tokens/{id}", revoke_token)
    app.router.add_get("/settings/users", settings_users)
    app.router.add_get("/account", account_page)
