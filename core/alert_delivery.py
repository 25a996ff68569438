"""Sending alert notices: signed webhooks and Apprise URLs.

A webhook is a POST of the JSON notice with ``X-ArchNest-Signature:
sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by the channel secret>`` (no header
when the channel has no secret). Apprise sends to any Apprise URL (ntfy, Gotify, Slack,
e-mail, ``json://``...). Each attempt is bounded by :data:`TIMEOUT` seconds; a failed one
is tried again after 1 s and then 2 s. A failure is returned (and logged without the URL,
which may hold a token), never raised: the evaluator goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from .alert_store import ChannelTarget

log = logging.getLogger("archnest.alerts")
# Apprise logs the URLs it parses and sends to, which hold tokens: only its critical lines.
logging.getLogger("apprise").setLevel(logging.CRITICAL)

TIMEOUT = 5.0
BACKOFF = (1.0, 2.0)  # the pauses before the second and third attempts
SIGNATURE_HEADER = "X-ArchNest-Signature"
USER_AGENT = "ArchNest-Alerts"


def signature(secret: str, body: bytes) -> str:
    """The header value for ``body`` signed with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def notice_body(notice: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(notice, separators=(",", ":"), ensure_ascii=False).encode()


def notice_title(notice: Mapping[str, Any]) -> str:
    rule = notice.get("rule") or {}
    state = str(notice.get("state", "")).upper()
    return f"[{state}] {rule.get('name') or 'ArchNest'}"


class DeliveryError(Exception):
    pass


async def _webhook_once(session: aiohttp.ClientSession, target: ChannelTarget, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if target.secret:
        headers[SIGNATURE_HEADER] = signature(target.secret, body)
    async with session.post(
        target.url,
        data=body,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        allow_redirects=False,
    ) as resp:
        if not 200 <= resp.status < 300:
            raise DeliveryError(f"the webhook answered HTTP {resp.status}")


async def _apprise_once(target: ChannelTarget, notice: Mapping[str, Any]) -> None:
    import apprise  # imported when first used: it loads every notification plugin

    apobj = apprise.Apprise()
    if not apobj.add(target.url):
        raise DeliveryError("Apprise does not understand this URL")
    body = str(notice.get("message") or "")
    ok = await asyncio.wait_for(apobj.async_notify(body=body, title=notice_title(notice)), TIMEOUT)
    if not ok:
        raise DeliveryError("Apprise could not deliver the notice")


async def deliver(
    session: aiohttp.ClientSession, target: ChannelTarget, notice: Mapping[str, Any]
) -> str | None:
    """Send ``notice`` to one channel with retries; None when it arrived, else why not."""
    body = notice_body(notice)
    error = "not sent"
    for attempt in range(len(BACKOFF) + 1):
        if attempt:
            await asyncio.sleep(BACKOFF[attempt - 1])
        try:
            if target.kind == "webhook":
                await _webhook_once(session, target, body)
            else:
                await _apprise_once(target, notice)
            return None
        except asyncio.CancelledError:
            raise
        except DeliveryError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {TIMEOUT:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: could not reach the webhook"
        except Exception as exc:  # a library bug must stay this channel's problem
            error = f"{type(exc).__name__}: {exc}"[:300]
        log.warning(
            "alert notice to channel %s (%s) failed, attempt %d: %s",
            target.id,
            target.name,
            attempt + 1,
            error,
        )
    return error


__all__ = ["SIGNATURE_HEADER", "deliver", "notice_body", "signature"]
