"""The OpenID Connect relying party: discovery, the authorization code flow with PKCE, and
ID token verification (the routes that drive it: :mod:`.oidc_routes`).

What a sign-in carries between the redirect to the provider and the callback (state,
nonce, PKCE verifier, where to go next) travels in a short-lived cookie encrypted and
authenticated with a key derived from ARCHNEST_SECRET_KEY, so any replica can finish a
sign-in another one started. A state is accepted once per replica
(:class:`ReplayGuard`); the provider accepts each code once, which covers the others.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from .errors import ApiError
from .secrets import SecretBox
from .settings import Settings

FLOW_COOKIE = "archnest_oidc"
FLOW_SECONDS = 600  # time to sign in at the provider and come back
METADATA_SECONDS = 3600
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
CLOCK_LEEWAY = 60
# Asymmetric signatures only: "none" and HMAC (keyed with the client secret) are refused.
ID_TOKEN_ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA"),
)


class SignInFailed(ApiError):
    """The sign-in could not be completed (a tampered or expired state, a token that does
    not verify, a provider that answered an error). The message is safe to show."""

    status, code = 400, "sso_failed"


class ProviderUnavailable(ApiError):
    status, code = 502, "sso_provider_unavailable"


@dataclass(frozen=True)
class Flow:
    """One sign-in in progress: what the callback must see again."""

    state: str
    nonce: str
    verifier: str
    next: str
    redirect_uri: str
    expires: float


class ReplayGuard:
    """The states this replica has completed, until their flow would have expired anyway.

    Only states from a flow cookie this server sealed get here, each once; ``max_entries``
    still bounds the memory a flood of completed sign-ins could take (oldest dropped)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._used: dict[str, float] = {}
        self.max_entries = max_entries

    def use(self, state: str, expires: float) -> bool:
        """True the first time ``state`` is used; False for a replay."""
        now = time.time()
        for key in [k for k, exp in self._used.items() if exp < now]:
            del self._used[key]
        if state in self._used:
            return False
        self._used[state] = expires
        while len(self._used) > self.max_entries:
            del self._used[next(iter(self._used))]
        return True


class OidcClient:
    """One configured provider. Its HTTP session lives in :meth:`cleanup_ctx`."""

    def __init__(self, settings: Settings, secret_key: str) -> None:
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret
        self.scopes = settings.oidc_scopes
        self.groups_claim = settings.oidc_groups_claim
        self.name = settings.oidc_name
        # A key of its own: a flow cookie can never be read as a stored credential.
        self._box = SecretBox(secret_key, purpose=b"archnest-oidc-flow-v1")
        self._session: aiohttp.ClientSession | None = None
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()
        self.replays = ReplayGuard()

    async def cleanup_ctx(self, _app: Any) -> AsyncIterator[None]:
        self._session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        try:
            yield
        finally:
            await self._session.close()
            self._session = None

    # ---- the provider's documents ----

    async def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        assert self._session is not None, "OidcClient used outside its cleanup context"
        try:
            async with self._session.get(url, **kwargs) as resp:
                if resp.status != 200:
                    raise ProviderUnavailable(f"the sign-in provider answered {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ProviderUnavailable(
                f"the sign-in provider cannot be reached ({type(exc).__name__})"
            ) from None
        if not isinstance(body, dict):
            raise ProviderUnavailable("the sign-in provider sent something other than an object")
        return body

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, fetched once an hour at most."""
        async with self._lock:
            if self._metadata and time.monotonic() < self._metadata[0]:
                return self._metadata[1]
            doc = await self._get_json(self.issuer + "/.well-known/openid-configuration")
            # The issuer must be the one configured (OpenID Connect Discovery 4.3): a
            # document that names another would let that one's tokens in.
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise ProviderUnavailable("the provider's discovery document names another issuer")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(key), str):
                    raise ProviderUnavailable(f"the provider's discovery document has no {key}")
            self._metadata = (time.monotonic() + METADATA_SECONDS, doc)
            self._keys = None
            return doc

    async def keys(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            doc = await self.metadata()
            self._keys = KeySet.import_key_set(await self._get_json(doc["jwks_uri"]))  # type: ignore[arg-type]
        return self._keys

    # ---- the flow ----

    async def start(self, next_path: str, redirect_uri: str) -> tuple[str, str]:
        """The provider's authorization URL and the flow cookie's value."""
        doc = await self.metadata()
        flow = Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            next=next_path,
            redirect_uri=redirect_uri,
            expires=time.time() + FLOW_SECONDS,
        )
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.scopes,
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": create_s256_code_challenge(flow.verifier),
            "code_challenge_method": "S256",
        }
        sep = "&" if "?" in doc["authorization_endpoint"] else "?"
        return doc["authorization_endpoint"] + sep + urlencode(query), self.seal(flow)

    def seal(self, flow: Flow) -> str:
        value = self._box.encrypt(json.dumps(flow.__dict__))
        assert value is not None
        return value

    def open(self, cookie: str | None) -> Flow:
        """The flow in the cookie; SignInFailed when it is missing, forged or expired."""
        if not cookie:
            raise SignInFailed("no sign-in in progress in this browser; start again")
        try:
            raw = json.loads(self._box.decrypt(cookie) or "")
            flow = Flow(**raw)
        except (ValueError, TypeError):
            raise SignInFailed("the sign-in state is not valid; start again") from None
        if flow.expires < time.time():
            raise SignInFailed("the sign-in took too long; start again")
        return flow

    async def finish(self, query: Mapping[str, str], flow: Flow) -> dict[str, Any]:
        """The verified claims of the user the provider sent back (ID token, and the
        userinfo endpoint's when the groups are not in the ID token)."""
        if "error" in query:
            # The provider's own words (the user refused, say): shown, not trusted for more.
            reason = query.get("error_description") or query["error"]
            raise SignInFailed(f"the provider refused the sign-in: {reason[:200]}")
        state = query.get("state", "")
        if not secrets.compare_digest(state.encode(), flow.state.encode()):
            raise SignInFailed("the sign-in state does not match; start again")
        if not self.replays.use(flow.state, flow.expires):
            raise SignInFailed("this sign-in was already completed; start again")
        # RFC 9207: a provider that names itself in the answer must be ours (mix-up attacks).
        if "iss" in query and query["iss"] != (await self.metadata())["issuer"]:
            raise SignInFailed("the answer comes from another provider")
        code = query.get("code")
        if not code:
            raise SignInFailed("the provider sent no authorization code")
        tokens = await self._exchange(code, flow)
        claims = await self.verify_id_token(str(tokens.get("id_token", "")), flow.nonce)
        if self.groups_claim not in claims and tokens.get("access_token"):
            claims.update(await self._userinfo(str(tokens["access_token"]), claims["sub"]))
        return claims

    async def _exchange(self, code: str, flow: Flow) -> dict[str, Any]:
        doc = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier,
        }
        headers = {}
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if not self.client_secret:
            form["client_id"] = self.client_id  # a public client: PKCE is its proof
        elif "client_secret_basic" in methods or "client_secret_post" not in methods:
            pair = f"{_form_escape(self.client_id)}:{_form_escape(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"], form["client_secret"] = self.client_id, self.client_secret
        assert self._session is not None
        try:
            endpoint = doc["token_endpoint"]
            async with self._session.post(endpoint, data=form, headers=headers) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ProviderUnavailable(
                f"the sign-in provider cannot be reached ({type(exc).__name__})"
            ) from None
        if status != 200 or not isinstance(body, dict):
            error = body.get("error", status) if isinstance(body, dict) else status
            raise SignInFailed(f"the provider refused the authorization code ({error})")
        return body

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims after checking its signature against the provider's
        keys, its issuer, audience, expiry and nonce."""
        if not id_token:
            raise SignInFailed("the provider sent no ID token")
        doc = await self.metadata()
        try:
            try:
                token = jwt.decode(id_token, await self.keys(), algorithms=ID_TOKEN_ALGORITHMS)
            except JoseError:
                # The provider may have rotated its keys since they were fetched.
                token = jwt.decode(
                    id_token, await self.keys(refresh=True), algorithms=ID_TOKEN_ALGORITHMS
                )
            registry = JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY,
                iss={"essential": True, "value": doc["issuer"]},
                aud={"essential": True, "value": self.client_id},
                sub={"essential": True},
                exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SignInFailed(f"the ID token does not verify ({type(exc).__name__})") from None
        claims = dict(token.claims)
        aud = claims.get("aud")
        # Several audiences: the token must have been issued to us (OIDC Core 3.1.3.7).
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise SignInFailed("the ID token was issued to another client")
        return claims

    async def _userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        doc = await self.metadata()
        url = doc.get("userinfo_endpoint")
        if not isinstance(url, str):
            return {}
        info = await self._get_json(url, headers={"Authorization": f"Bearer {access_token}"})
        # Userinfo about someone else must not decide this user's role (OIDC Core 5.3.2).
        if info.get("sub") != sub:
            raise SignInFailed("the provider's userinfo is about another user")
        return {k: v for k, v in info.items() if k not in ("iss", "aud", "exp", "nonce")}


def _form_escape(value: str) -> str:
    # RFC 6749 2.3.1: the client id and secret are form-encoded before Basic encoding.
    return quote_plus(value)


__all__ = [
    "FLOW_COOKIE",
    "Flow",
    "OidcClient",
    "ProviderUnavailable",
    "ReplayGuard",
    "SignInFailed",
]
