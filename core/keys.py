"""Typed application state keys (never string keys)."""

from __future__ import annotations

import pluggy
from aiohttp import web

from .db import Database
from .login_throttle import LoginThrottle, PasswordVerifier
from .oidc_client import OidcClient
from .secrets import SecretBox
from .settings import Settings
from .sources import HostSource
from .streams import StreamRegistry
from .users import CredentialCache

SETTINGS_KEY = web.AppKey("archnest_settings", Settings)
DB_KEY = web.AppKey("archnest_db", Database)
PM_KEY = web.AppKey("archnest_pm", pluggy.PluginManager)
SECRETS_KEY = web.AppKey("archnest_secrets", SecretBox)
SOURCES_KEY = web.AppKey("archnest_sources", dict[str, HostSource])
THROTTLE_KEY = web.AppKey("archnest_login_throttle", LoginThrottle)
PASSWORD_VERIFIER_KEY = web.AppKey("archnest_password_verifier", PasswordVerifier)
AUTH_CACHE_KEY = web.AppKey("archnest_auth_cache", CredentialCache)
STREAMS_KEY = web.AppKey("archnest_streams", StreamRegistry)
# Present only when single sign-on over OpenID Connect is configured.
OIDC_KEY = web.AppKey("archnest_oidc", OidcClient)
