"""Scanning and testing targets that may not be saved yet, for the Settings page.

Nothing here uses the pool: a test opens its own connections (through the pinned jump
hops) and closes them in ``finally``, so a failed test never touches, and never
replaces, the pooled connection other requests of the saved target use. A test only
authenticates: no command is run, nothing from the request reaches a shell.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import asyncssh
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db import Database
from ..errors import ApiError, BadRequest, HostError, HostTimeout
from ..secrets import SecretBox
from .connect import (
    ConnectSpec,
    HostKeyNotTrusted,
    SshAuthFailed,
    SshUnreachable,
    close_all,
    connect_one,
    fingerprint,
    key_line,
    scan_host_key,
)
from .fields import SshTargetFields, field_names
from .models import SshTarget
from .targets import _apply, _check_credentials, _check_jump, to_spec

# The field of a test body that holds the credential a failed login points at.
AUTH_FIELD = {"key": "private_key", "password": "password", "certificate": "certificate"}


class HostKeyRefused(ApiError):
    """A hop or the target presented a key that is not pinned for it: 409, with the
    presented and the pinned fingerprints so a page can show them side by side."""

    status = 409

    def __init__(
        self, message: str, *, code: str, field: str, presented: str, pinned: Sequence[str]
    ) -> None:
        super().__init__(message, code=code, field=field)
        self.presented = presented
        self.pinned = list(pinned)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "field": self.field,
                "presented": self.presented,
                "pinned": self.pinned,
            }
        }


def scan_view(key: asyncssh.SSHKey, pinned: Sequence[str]) -> dict[str, Any]:
    """A scanned key and how it compares with the pinned ones."""
    line = key_line(key)
    return {
        "host_key": line,
        "algorithm": key.get_algorithm(),
        "fingerprint": fingerprint(key),
        "trusted": line in pinned,
        "matches": line in pinned,
        "pinned": [fingerprint(k) for k in pinned],
    }


async def _hop_specs(s: AsyncSession, box: SecretBox, jump: Sequence[int]) -> list[ConnectSpec]:
    hops = []
    for jid in jump:
        hop = await s.get(SshTarget, jid)
        if hop is None:  # _check_jump ran first; a hop removed meanwhile
            raise BadRequest(f"jump target {jid} does not exist", field="jump")
        hops.append(to_spec(hop, box))
    return hops


async def draft_chain(
    db: Database,
    box: SecretBox,
    data: dict[str, Any],
    fields: Sequence[SshTargetFields],
    *,
    base: int | None = None,
    need_login: bool = True,
) -> list[ConnectSpec]:
    """The chain of a target as ``data`` describes it, saved nowhere. ``base``: a saved
    target whose values (stored credentials included) fill in what ``data`` leaves out,
    so an edit can be tested before it is saved. Validated like a save (400 naming the
    field); ``need_login=False`` (a scan) skips the credentials."""
    core = {k: v for k, v in data.items() if k not in field_names(fields)}
    async with db.session() as s:
        if base is not None:
            saved = await s.get(SshTarget, base)
            if saved is None:
                raise BadRequest(f"unknown ssh target {base}", code="unknown_target", field="base")
            t = SshTarget(**saved.model_dump())
        else:
            for key in ("host", "username") if need_login else ("host",):
                if not core.get(key):
                    raise BadRequest(f"{key} is required", code="invalid_target", field=key)
            t = SshTarget(name="unsaved target", host="", username="", jump=[], host_keys=[])
        _apply(t, core, box, fields)
        if need_login:
            _check_credentials(t, box)
        await _check_jump(s, t)
        hops = await _hop_specs(s, box, t.jump)
    t.id = base or 0
    try:
        return [*hops, to_spec(t, box)]
    except ValueError as exc:  # a stored secret that no longer decrypts
        raise HostError(f"{t.name}: {exc}", code="ssh_credentials") from exc


def _worded(exc: ApiError, spec: ConnectSpec, hop: int | None) -> ApiError:
    """The error of one failed hop, worded for people and pointing at the field."""
    who = f"jump host {spec.name}" if hop is not None else f"{spec.host}:{spec.port}"
    where = f"jump.{hop}" if hop is not None else None
    if isinstance(exc, HostKeyNotTrusted) and exc.presented:
        new = f"{exc.presented.split()[0]} {fingerprint(exc.presented)}"
        pinned = [fingerprint(k) for k in exc.pinned]
        if pinned:
            message = (
                f"{who}: the host key has changed. Pinned: {', '.join(pinned)}; presented: "
                f"{new}. Nothing was sent. Scan the key, compare it with the server's, and "
                "replace the pinned key only if you trust the change."
            )
            code = "host_key_changed"
        else:
            message = f"{who}: no host key is pinned (presented: {new}); scan and pin it first."
            code = "host_key_not_pinned"
        return HostKeyRefused(
            message,
            code=code,
            field=where or "host_keys",
            presented=fingerprint(exc.presented),
            pinned=pinned,
        )
    if isinstance(exc, SshAuthFailed):
        return SshAuthFailed(
            f"{who}: authentication failed for user {spec.username!r} ({spec.auth})",
            field=where or AUTH_FIELD.get(spec.auth, "auth"),
        )
    if isinstance(exc, SshUnreachable) and isinstance(exc.__cause__, ConnectionRefusedError):
        return SshUnreachable(
            f"{who}: connection refused (is sshd listening on that port?)",
            code="ssh_refused",
            field=where or "port",
        )
    if isinstance(exc, SshUnreachable):
        return SshUnreachable(exc.message, field=where or "host")
    if isinstance(exc, HostTimeout):
        return HostTimeout(exc.message, field=where or "host")
    return exc


async def _open_hops(
    chain: Sequence[ConnectSpec],
    *,
    connect_timeout: float,
    keepalive: float,
    only_jumps: bool = False,
) -> list[asyncssh.SSHClientConnection]:
    """Connect hop by hop; a failure is worded for the hop at fault (``only_jumps``: the
    chain holds jump hosts only, no target). On failure the hops already open are closed."""
    conns: list[asyncssh.SSHClientConnection] = []
    last = -1 if only_jumps else len(chain) - 1
    try:
        for i, spec in enumerate(chain):
            try:
                conn = await connect_one(
                    spec,
                    conns[-1] if conns else None,
                    connect_timeout=connect_timeout,
                    keepalive=keepalive,
                )
            except ApiError as exc:
                raise _worded(exc, spec, None if i == last else i) from exc
            conns.append(conn)
    except BaseException:
        close_all(conns)
        raise
    return conns


def _bound(connect_timeout: float, hops: int) -> float:
    # Each hop may use its connect and its login timeout; past that the test gives up.
    return 2 * connect_timeout * max(1, hops) + 1


async def test_chain(
    chain: Sequence[ConnectSpec], *, connect_timeout: float, keepalive: float
) -> dict[str, Any]:
    """Connect through ``chain`` with its pinned keys and credentials, authenticate, close.
    Raises the worded errors of ``_worded``."""
    started = time.monotonic()
    conns: list[asyncssh.SSHClientConnection] = []
    try:
        async with asyncio.timeout(_bound(connect_timeout, len(chain))):
            conns = await _open_hops(chain, connect_timeout=connect_timeout, keepalive=keepalive)
        conn = conns[-1]
        key = conn.get_server_host_key()
        return {
            "ok": True,
            "server_version": conn.get_extra_info("server_version") or "",
            "algorithm": key.get_algorithm() if key else None,
            "fingerprint": fingerprint(key) if key else None,
            "hops": len(chain) - 1,
            "seconds": round(time.monotonic() - started, 3),
        }
    except TimeoutError as exc:
        raise HostTimeout(
            f"{chain[-1].host}:{chain[-1].port}: the test did not finish in time", field="host"
        ) from exc
    finally:
        close_all(conns)


async def scan_chain(
    chain: Sequence[ConnectSpec], *, connect_timeout: float, keepalive: float
) -> dict[str, Any]:
    """The key the last spec's server presents, reached through the others (each hop
    verified against its own pinned keys); compared with the last spec's ``host_keys``."""
    hops: list[asyncssh.SSHClientConnection] = []
    try:
        async with asyncio.timeout(_bound(connect_timeout, len(chain))):
            hops = await _open_hops(
                chain[:-1], connect_timeout=connect_timeout, keepalive=keepalive, only_jumps=True
            )
            key = await scan_host_key(
                chain[-1], hops[-1] if hops else None, connect_timeout=connect_timeout
            )
    except TimeoutError as exc:
        raise HostTimeout(
            f"{chain[-1].host}:{chain[-1].port}: no host key within the time limit", field="host"
        ) from exc
    except (SshUnreachable, HostTimeout) as exc:
        if not exc.field:  # the scanned host itself (a hop's error already names it)
            exc.field = "host"
        raise
    finally:
        close_all(hops)
    return scan_view(key, chain[-1].host_keys)
