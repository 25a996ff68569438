"""Encryption of stored credentials and masking of secret-looking env values.

Every source masks env through :func:`mask_env` so the rule lives in exactly one place
(the bash agent mirrors the same name list).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASK = "****"

# Substrings of an upper-cased env name that mark its value as secret. Kept in sync with
# plugins/docker_agent/files/archnest-docker-agent.sh (a test compares both lists).
SECRET_NAME_PARTS: tuple[str, ...] = (
    "PASSWORD",
    "PASSWD",
    "PASS",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "CRED",
    "AUTH",
    "PRIVATE",
    "CERT",
    "SIGNATURE",
    "SALT",
    "SESSION",
    "COOKIE",
    "DSN",
    "CONNECTION_STRING",
    "APIKEY",
)

# scheme://user:password@host anywhere in a value: credentials embedded in a URL are
# secret whatever the name. The agent script's URL_CREDENTIALS_RE is this expression in
# jq's syntax (a test checks that both mask the same values).
URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]*:[^/?#@\s]*@")


def is_secret_name(name: str) -> bool:
    """True when an environment variable's name suggests its value is a secret."""
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS)


def is_secret_value(value: str) -> bool:
    """True when the value itself carries credentials (a URL with user:password@)."""
    return URL_CREDENTIALS.search(value) is not None


# Keyed digests of masked env values: the container diff compares two secrets without
# revealing them. The key is random per process, not derived from ARCHNEST_SECRET_KEY:
# a digest is only ever compared with another made in the same request, never stored or
# sent, so no replica needs to share it, and no digest can be checked offline.
_ENV_DIGEST_KEY = secrets.token_bytes(32)


def masked_env_digests(env: Iterable[str] | None) -> dict[str, str]:
    """``{name: keyed digest}`` of the values :func:`mask_env` masks in Docker's
    ``["NAME=value", ...]``; a value that arrived masked (``****``) has none."""
    out: dict[str, str] = {}
    for item in env or []:
        name, _, value = str(item).partition("=")
        if value != MASK and (is_secret_name(name) or is_secret_value(value)):
            out[name] = hmac.new(_ENV_DIGEST_KEY, value.encode(), "sha256").hexdigest()
    return out


def mask_env(env: Iterable[str] | Iterable[dict] | None) -> list[dict]:
    """Normalise env to ``[{"name","value","masked"}]`` with secret values replaced.

    Accepts Docker's ``["NAME=value", ...]`` or already-normalised dicts. The agent
    masks before sending; masking again is the server's defence in depth, and a value
    that arrives as ``****`` is marked masked whichever rule masked it on the host.
    """
    out: list[dict] = []
    for item in env or []:
        if isinstance(item, dict):
            name = str(item.get("name", ""))
            value = "" if item.get("value") is None else str(item.get("value"))
        else:
            name, _, value = str(item).partition("=")
        masked = value == MASK or is_secret_name(name) or is_secret_value(value)
        out.append({"name": name, "value": MASK if masked else value, "masked": masked})
    return out


class SecretBox:
    """Authenticated encryption (Fernet) with a key derived from ARCHNEST_SECRET_KEY."""

    def __init__(self, secret_key: str, purpose: bytes = b"archnest-credentials-v1"):
        if not secret_key:
            raise ValueError("a secret key is required")
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(raw))

    def encrypt(self, plaintext: str | None) -> str | None:
        if plaintext is None or plaintext == "":
            return None
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        if token is None or token == "":
            return None
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            # Usually means ARCHNEST_SECRET_KEY changed since the value was stored.
            raise ValueError("stored secret cannot be decrypted with the current key") from exc


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
