"""Single sign-on over OpenID Connect: ``GET /auth/oidc/login`` sends the browser to the
provider, ``GET /auth/oidc/callback`` takes it back and signs it in with the same session
cookie as a password sign-in (docs/sso.md). Both are public: they are how one signs in.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from .audit import append as audit_append
from .auth import public
from .client_address import client_address
from .errors import ApiError, FeatureDisabled
from .keys import AUTH_CACHE_KEY, DB_KEY, OIDC_KEY, SETTINGS_KEY
from .oidc_client import FLOW_COOKIE, FLOW_SECONDS, OidcClient
from .openapi import Content, Param, operation
from .sso import external_username, groups_of, peer_is_trusted, sign_in_external
from .users import create_session
from .web import safe_next, set_session_cookie

CALLBACK_PATH = "/auth/oidc/callback"
FLOW_PATH = "/auth/oidc/"
REFUSED_PAGE = Content("text/html", None, "The sign-in page with the reason.")


def _client(request: web.Request) -> OidcClient:
    client = request.app.get(OIDC_KEY)
    if client is None:
        raise FeatureDisabled("single sign-on is not configured (ARCHNEST_OIDC_ISSUER)")
    return client


def callback_url(request: web.Request) -> str:
    """Where the provider sends the browser back: this server as the browser reaches it.

    Behind a reverse proxy that terminates TLS the proxy's X-Forwarded-Proto/-Host say
    what the browser sees; they are believed only from a trusted proxy.
    """
    scheme, host = request.scheme, request.host
    if peer_is_trusted(request, request.app[SETTINGS_KEY]):
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
    return f"{scheme}://{host}{CALLBACK_PATH}"


@public
@operation(
    "Sign in with the OpenID Connect provider: a redirect to it",
    description="`next` (a path on this site) is where the browser lands once signed in. "
    "503 `feature_disabled` when single sign-on is not configured; 502 when the "
    "provider's discovery document cannot be read.",
    tags=("auth",),
    query=(Param("next", "A path on this site to land on after signing in."),),
    responses={302: None},
    errors=(502, 503),
)
async def oidc_login(request: web.Request) -> web.StreamResponse:
    client = _client(request)
    url, sealed = await client.start(safe_next(request.query.get("next")), callback_url(request))
    resp = web.HTTPFound(url)
    resp.set_cookie(
        FLOW_COOKIE,
        sealed,
        httponly=True,
        # Lax: the provider's redirect back is a top-level GET, which carries it.
        samesite="Lax",
        secure=request.app[SETTINGS_KEY].secure_cookies or request.secure,
        max_age=FLOW_SECONDS,
        path=FLOW_PATH,
    )
    raise resp


@public
@operation(
    "Where the OpenID Connect provider sends the browser back; sets the session cookie",
    description="Checks the state and nonce of the sign-in this browser started, "
    "exchanges the code (with the PKCE verifier), verifies the ID token, then maps the "
    "groups claim to a role. A refusal (no allowed group, a disabled user, a state that "
    "does not match or was used already) is the sign-in page with the reason.",
    tags=("auth",),
    query=(
        Param("code", "The authorization code."),
        Param("state", "The state this browser's sign-in started with."),
        Param("error", "The provider's error code, when it refused."),
    ),
    responses={303: None, 400: REFUSED_PAGE, 403: REFUSED_PAGE},
    errors=(502, 503),
)
async def oidc_callback(request: web.Request) -> web.StreamResponse:
    client = _client(request)
    app = request.app
    username: str | None = None
    try:
        flow = client.open(request.cookies.get(FLOW_COOKIE))
        claims = await client.finish(request.query, flow)
        username = external_username(claims)
        groups = groups_of(claims.get(client.groups_claim))
        user = await sign_in_external(
            app[DB_KEY], username, groups, app[SETTINGS_KEY], app[AUTH_CACHE_KEY]
        )
    except ApiError as exc:
        await _audit(request, username, "login.failed", exc.code)
        resp = aiohttp_jinja2.render_template(
            "core/login.html", request, {"next": "/", "error": exc.message}
        )
        resp.set_status(exc.status)
        resp.del_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return resp
    token = await create_session(app[DB_KEY], user)
    await _audit(request, user.username, "login", "ok")
    resp = web.HTTPSeeOther(flow.next)
    set_session_cookie(request, resp, token)
    resp.del_cookie(FLOW_COOKIE, path=FLOW_PATH)
    raise resp


async def _audit(request: web.Request, user: str | None, action: str, result: str) -> None:
    # The same action names as a password sign-in (docs/audit.md), the method in detail.
    # GETs are not recorded by the audit middleware, so the row is written here.
    detail: dict[str, Any] = {"method": "oidc"}
    await audit_append(
        request.app[DB_KEY],
        action=action,
        user=user,
        result=result,
        client_ip=client_address(request),
        detail=detail,
    )


def setup_oidc_routes(app: web.Application) -> None:
    app.router.add_get("/auth/oidc/login", oidc_login)
    app.router.add_get(CALLBACK_PATH, oidc_callback)
