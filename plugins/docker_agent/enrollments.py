"""Per-host agent tokens: enrolment, re-issue, revocation, and the ingest's token check.

A token is 256 random bits shown once; only its SHA-256 is stored. The ingest finds the
enrolled host by that hash. To keep the ingest fast, a small cache remembers *hits*
(hash -> host) for ``CACHE_SECONDS``; misses are never cached, so a new enrolment works
at once everywhere. A revoke or re-issue clears this replica's cache at once; another
replica keeps accepting the old token for at most ``CACHE_SECONDS``
(docs/docker-agent-monitoring.md, "Per-host tokens").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from archnest import Conflict, FeatureDisabled, NotFound, Unauthorized, iso_utc
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .models import DockerAgentEnrollment, DockerAgentReport
from .store import utc_naive

_T = DockerAgentEnrollment.__table__  # type: ignore[attr-defined]
_R = DockerAgentReport.__table__  # type: ignore[attr-defined]
# How long a replica may keep accepting a token revoked on another replica.
CACHE_SECONDS = 5.0
CACHE_MAX_ENTRIES = 10_000


def new_token() -> str:
    """256 random bits, URL-safe (letters, digits, ``-`` and ``_``: the agent's charset)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def shared_token_ok(presented: str, expected: str) -> bool:
    """Constant time, in the length too: both sides are hashed first."""
    a = hashlib.sha256(presented.encode()).digest()
    b = hashlib.sha256(expected.encode()).digest()
    return hmac.compare_digest(a, b)


@dataclass
class Enrollment:
    host: str
    created_at: datetime
    token_issued_at: datetime
    revoked_at: datetime | None
    last_report_at: datetime | None

    def status(self, stale_seconds: int, now: datetime) -> str:
        """``revoked``, ``never`` (enrolled, no report yet), ``stale`` or ``ok``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.last_report_at is None:
            return "never"
        age = (now - self.last_report_at).total_seconds()
        return "stale" if age > stale_seconds else "ok"

    def view(self, stale_seconds: int, now: datetime) -> dict[str, Any]:
        """A ``GET /api/agents/docker/enrollments`` item: never a token or its hash."""
        return {
            "host": self.host,
            "created_at": iso_utc(self.created_at),
            "token_issued_at": iso_utc(self.token_issued_at),
            "last_report_at": iso_utc(self.last_report_at),
            "revoked": self.revoked_at is not None,
            "revoked_at": iso_utc(self.revoked_at),
            "status": self.status(stale_seconds, now),
        }


class EnrollmentStore:
    """The enrollments table and the ingest's hits-only token cache."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._hits: dict[str, tuple[str, float]] = {}
        self.lookups = 0  # database lookups of a token (the cache's misses), for tests

    # ---- admin side -------------------------------------------------------------
    async def create(self, host: str) -> str:
        """Enroll ``host`` and return its new token. 409 when it is enrolled and not
        revoked; a revoked host is enrolled again (new token, new creation time)."""
        token = new_token()
        now = utc_naive()
        values = {"token_hash": token_hash(token), "token_issued_at": now, "revoked_at": None}
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(_T.c.revoked_at).where(_T.c.host == host))).first()
            if row is not None and row.revoked_at is None:
                raise Conflict(
                    f"agent host {host!r} is already enrolled (re-issue its token instead)",
                    code="host_enrolled",
                    field="host",
                )
            try:
                if row is None:
                    await conn.execute(_T.insert().values(host=host, created_at=now, **values))
                else:
                    stmt = update(_T).where(_T.c.host == host).values(created_at=now, **values)
                    await conn.execute(stmt)
            except IntegrityError:  # enrolled by a concurrent request meanwhile
                raise Conflict(
                    f"agent host {host!r} is already enrolled", code="host_enrolled", field="host"
                ) from None
        self.clear_cache()
        return token

    async def reissue(self, host: str) -> str:
        """A new token for an enrolled host: the old one stops working, a revoked host
        is enrolled again. 404 for a host that was never enrolled."""
        token = new_token()
        now = utc_naive()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(_T)
                .where(_T.c.host == host)
                .values(token_hash=token_hash(token), token_issued_at=now, revoked_at=None)
            )
        if not result.rowcount:
            raise NotFound(f"agent host {host!r} is not enrolled", code="unknown_enrollment")
        self.clear_cache()
        return token

    async def revoke(self, host: str) -> None:
        """The host's token gets 401 from now on (at once on this replica); its last
        report stays. Revoking a revoked host is a no-op; an unknown host is 404."""
        async with self.engine.begin() as conn:
            found = (await conn.execute(select(_T.c.revoked_at).where(_T.c.host == host))).first()
            if found is None:
                raise NotFound(f"agent host {host!r} is not enrolled", code="unknown_enrollment")
            if found.revoked_at is None:
                stmt = update(_T).where(_T.c.host == host).values(revoked_at=utc_naive())
                await conn.execute(stmt)
        self.clear_cache()

    async def list(self) -> list[Enrollment]:
        """Every enrollment with the time of its host's last accepted report."""
        stmt = (
            select(
                _T.c.host,
                _T.c.created_at,
                _T.c.token_issued_at,
                _T.c.revoked_at,
                _R.c.received_at.label("last_report_at"),
            )
            .select_from(_T.outerjoin(_R, _R.c.host == _T.c.host))
            .order_by(_T.c.host)
        )
        async with self.engine.connect() as conn:
            return [Enrollment(**row._mapping) for row in await conn.execute(stmt)]

    # ---- ingest side ------------------------------------------------------------
    def clear_cache(self) -> None:
        self._hits.clear()

    async def host_for(self, token: str) -> str | None:
        """The enrolled, non-revoked host of ``token``, or None."""
        digest = token_hash(token)
        hit = self._hits.get(digest)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        self.lookups += 1
        stmt = select(_T.c.host).where(_T.c.token_hash == digest, _T.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            host = (await conn.execute(stmt)).scalar()
        if host is None:
            self._hits.pop(digest, None)
            return None
        if len(self._hits) >= CACHE_MAX_ENTRIES:
            self._hits.clear()
        self._hits[digest] = (host, now + CACHE_SECONDS)
        return host

    async def any(self) -> bool:
        """Whether any host was ever enrolled (revoked ones count)."""
        async with self.engine.connect() as conn:
            return bool((await conn.execute(select(exists().select_from(_T)))).scalar())

    async def authorise(self, authorization: str, shared: str | None) -> str | None:
        """The host a report may be for (None: any host, the shared token), or raise.

        401 for a missing, unknown or revoked token; 503 only when there is neither a
        shared token nor any enrollment (ingest is then not set up at all).
        """
        scheme, _, presented = authorization.partition(" ")
        presented = presented.strip()
        bearer = scheme.lower() == "bearer" and bool(presented)
        if bearer and shared and shared_token_ok(presented, shared):
            return None
        if bearer:
            host = await self.host_for(presented)
            if host is not None:
                return host
        if not shared and not await self.any():
            raise FeatureDisabled(
                "agent ingest is disabled: enroll a host (Settings > Agents) or set "
                "ARCHNEST_AGENT_TOKEN on the server",
                code="agent_ingest_disabled",
            )
        raise Unauthorized("invalid or missing agent token", code="bad_agent_token")


ENROLLMENTS_KEY = web.AppKey("archnest_docker_agent_enrollments", EnrollmentStore)
