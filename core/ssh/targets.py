"""SSH targets: validation, storage with encrypted credentials, and the public view.

Credentials (private key, passphrase, password, certificate) are stored only as
SecretBox tokens and never returned; the API reports ``has_private_key`` and friends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import asyncssh
from sqlmodel import select

from ..containers import MAX_ROW_ID, iso_utc
from ..db import Database, utcnow
from ..errors import BadRequest, Conflict, HostError, NotFound
from ..secrets import SecretBox
from .connect import ConnectSpec, fingerprint, parse_host_key
from .fields import SshTargetFields, field_names, load_values, save_values
from .models import AUTH_KINDS, SshTarget

MAX_JUMPS = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@:-]{0,127}$")
# A DNS name, IPv4, or IPv6 (optionally bracketed): nothing that could smuggle options.
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?)$")
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$")
SECRET_FIELDS = ("private_key", "passphrase", "password", "certificate")
FIELDS = frozenset(
    {"name", "host", "port", "username", "auth", "jump", "host_keys"} | set(SECRET_FIELDS)
)
# Plugins' fields (``SshTargetFields``) are stored by the plugins; the core keeps none.
NO_FIELDS: tuple[SshTargetFields, ...] = ()


def public_view(t: SshTarget, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the API returns: never a credential, only whether one is set. ``extra``:
    the plugins' fields of this target (``load_values``)."""
    return {
        "id": t.id,
        "name": t.name,
        "host": t.host,
        "port": t.port,
        "username": t.username,
        "auth": t.auth,
        "jump": list(t.jump or []),
        "host_keys": list(t.host_keys or []),
        "host_key_fingerprints": [fingerprint(k) for k in t.host_keys or []],
        **(extra or {}),
        "has_private_key": bool(t.private_key_enc),
        "has_passphrase": bool(t.passphrase_enc),
        "has_password": bool(t.password_enc),
        "has_certificate": bool(t.certificate_enc),
        "created_at": iso_utc(t.created_at),
        "updated_at": iso_utc(t.updated_at),
    }


def _str(data: dict, key: str, pattern: re.Pattern, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(f"{key}: {what}", code="invalid_target", field=key)
    return value


def _apply(
    t: SshTarget, data: dict, box: SecretBox, fields: Sequence[SshTargetFields] = NO_FIELDS
) -> None:
    unknown = set(data) - FIELDS - field_names(fields)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}", code="invalid_target")
    if "name" in data:
        t.name = _str(data, "name", _NAME, "1-128 letters, digits, space or ._@:-")
    if "host" in data:
        t.host = _str(data, "host", _HOST, "a host name or IP address")
    if "username" in data:
        t.username = _str(data, "username", _USER, "1-64 letters, digits or ._-")
    if "port" in data:
        port = data["port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise BadRequest("port must be an integer 1-65535", code="invalid_target", field="port")
        t.port = port
    if "auth" in data:
        if data["auth"] not in AUTH_KINDS:
            raise BadRequest(
                f"auth must be one of: {', '.join(AUTH_KINDS)}", code="invalid_target", field="auth"
            )
        t.auth = data["auth"]
    if "host_keys" in data:
        keys = data["host_keys"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BadRequest(
                "host_keys must be a list of strings", code="invalid_target", field="host_keys"
            )
        t.host_keys = list(dict.fromkeys(parse_host_key(k) for k in keys))
    if "jump" in data:
        jump = data["jump"]
        if (
            not isinstance(jump, list)
            or not all(
                isinstance(j, int) and not isinstance(j, bool) and 0 < j <= MAX_ROW_ID for j in jump
            )
            or len(jump) > MAX_JUMPS
        ):
            raise BadRequest(f"jump must be a list of up to {MAX_JUMPS} target ids", field="jump")
        t.jump = list(jump)
    for key in SECRET_FIELDS:
        if key in data:
            value = data[key]
            if value is not None and not isinstance(value, str):
                raise BadRequest(
                    f"{key} must be a string or null", code="invalid_target", field=key
                )
            setattr(t, f"{key}_enc", box.encrypt(value))


def _check_credentials(t: SshTarget, box: SecretBox) -> None:
    """Refuse a target that could never log in (a key that does not decode, etc.)."""
    key = box.decrypt(t.private_key_enc)
    if t.auth in ("key", "certificate"):
        if not key:
            raise BadRequest(
                f"auth {t.auth!r} needs private_key", code="invalid_target", field="private_key"
            )
        try:
            asyncssh.import_private_key(key, box.decrypt(t.passphrase_enc))
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
            # A wrong passphrase is the passphrase's fault, anything else the key's.
            wrong = isinstance(exc, asyncssh.KeyEncryptionError) or "assphrase" in str(exc)
            where = "passphrase" if wrong else "private_key"
            raise BadRequest(f"{where}: {exc}", code="invalid_target", field=where) from exc
    if t.auth == "certificate":
        cert = box.decrypt(t.certificate_enc)
        if not cert:
            raise BadRequest(
                "auth 'certificate' needs certificate", code="invalid_target", field="certificate"
            )
        try:
            asyncssh.import_certificate(cert)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise BadRequest(
                f"certificate: {exc}", code="invalid_target", field="certificate"
            ) from exc
    if t.auth == "password" and not t.password_enc:
        raise BadRequest("auth 'password' needs password", code="invalid_target", field="password")


async def _check_jump(s: Any, t: SshTarget) -> None:
    if t.id is not None and t.id in t.jump:
        raise BadRequest(
            "a target cannot be its own jump host", code="invalid_target", field="jump"
        )
    if len(set(t.jump)) != len(t.jump):
        raise BadRequest("jump lists a target twice", code="invalid_target", field="jump")
    for jid in t.jump:
        if await s.get(SshTarget, jid) is None:
            raise BadRequest(
                f"jump target {jid} does not exist", code="invalid_target", field="jump"
            )


async def _name_taken(s: Any, name: str, own_id: int | None) -> bool:
    row = (await s.exec(select(SshTarget).where(SshTarget.name == name))).first()
    return row is not None and row.id != own_id


async def list_targets(db: Database) -> list[SshTarget]:
    async with db.session() as s:
        query = select(SshTarget).order_by(SshTarget.id)  # type: ignore[arg-type]
        return list((await s.exec(query)).all())


async def list_views(
    db: Database, fields: Sequence[SshTargetFields] = NO_FIELDS
) -> list[dict[str, Any]]:
    """Every target as the API shows it, with the plugins' fields."""
    async with db.session() as s:
        query = select(SshTarget).order_by(SshTarget.id)  # type: ignore[arg-type]
        rows = list((await s.exec(query)).all())
        extra = await load_values(s, fields, [t.id for t in rows if t.id is not None])
    return [public_view(t, extra.get(t.id)) for t in rows if t.id is not None]


async def get_view(
    db: Database, target_id: int, fields: Sequence[SshTargetFields] = NO_FIELDS
) -> dict[str, Any]:
    async with db.session() as s:
        t = await s.get(SshTarget, target_id)
        if t is None:
            raise NotFound(f"unknown ssh target {target_id}", code="unknown_target")
        extra = await load_values(s, fields, [target_id])
    return public_view(t, extra[target_id])


async def get_target(db: Database, target_id: int) -> SshTarget:
    async with db.session() as s:
        t = await s.get(SshTarget, target_id)
    if t is None:
        raise NotFound(f"unknown ssh target {target_id}", code="unknown_target")
    return t


async def create_target(
    db: Database, box: SecretBox, data: dict, fields: Sequence[SshTargetFields] = NO_FIELDS
) -> dict[str, Any]:
    """Store a new target (and the plugins' fields, in the same transaction); its view."""
    for key in ("name", "host", "username"):
        if key not in data:
            raise BadRequest(f"{key} is required", code="invalid_target", field=key)
    t = SshTarget(name="", host="", username="", jump=[], host_keys=[])
    _apply(t, data, box, fields)
    _check_credentials(t, box)
    async with db.session() as s:
        await _check_jump(s, t)
        if await _name_taken(s, t.name, None):
            raise Conflict(f"an ssh target named {t.name!r} exists", field="name")
        s.add(t)
        await s.flush()  # the id the plugins' rows refer to
        assert t.id is not None
        await save_values(s, fields, t.id, {}, data)
        await s.commit()
        await s.refresh(t)
        extra = await load_values(s, fields, [t.id])
    return public_view(t, extra[t.id])


async def update_target(
    db: Database,
    box: SecretBox,
    target_id: int,
    data: dict,
    fields: Sequence[SshTargetFields] = NO_FIELDS,
) -> dict[str, Any]:
    """Change a target (and the plugins' fields, in the same transaction); its view."""
    async with db.session() as s:
        t = await s.get(SshTarget, target_id)
        if t is None:
            raise NotFound(f"unknown ssh target {target_id}", code="unknown_target")
        _apply(t, data, box, fields)
        _check_credentials(t, box)
        await _check_jump(s, t)
        if await _name_taken(s, t.name, t.id):
            raise Conflict(f"an ssh target named {t.name!r} exists", field="name")
        current = (await load_values(s, fields, [target_id]))[target_id]
        await save_values(s, fields, target_id, current, data)
        t.updated_at = utcnow()
        s.add(t)
        await s.commit()
        await s.refresh(t)
        extra = await load_values(s, fields, [target_id])
    return public_view(t, extra[target_id])


async def delete_target(
    db: Database, target_id: int, fields: Sequence[SshTargetFields] = NO_FIELDS
) -> None:
    async with db.session() as s:
        t = await s.get(SshTarget, target_id)
        if t is None:
            raise NotFound(f"unknown ssh target {target_id}", code="unknown_target")
        users = [o.name for o in (await s.exec(select(SshTarget))).all() if target_id in o.jump]
        if users:
            raise Conflict(f"target is a jump host of: {', '.join(users)}")
        for ext in fields:
            await ext.delete(s, target_id)
        await s.delete(t)
        await s.commit()


def to_spec(t: SshTarget, box: SecretBox, extra: Mapping[str, Any] | None = None) -> ConnectSpec:
    assert t.id is not None
    return ConnectSpec(
        id=t.id,
        name=t.name,
        host=t.host,
        port=t.port,
        username=t.username,
        auth=t.auth,
        private_key=box.decrypt(t.private_key_enc),
        passphrase=box.decrypt(t.passphrase_enc),
        password=box.decrypt(t.password_enc),
        certificate=box.decrypt(t.certificate_enc),
        host_keys=tuple(t.host_keys or ()),
        extra=dict(extra or {}),
    )


async def load_chain(
    db: Database,
    box: SecretBox,
    target_id: int,
    fields: Sequence[SshTargetFields] = NO_FIELDS,
) -> list[ConnectSpec]:
    """The target's hops in order, then the target itself. Each hop is a target with its
    own pinned keys and credentials; a hop's own ``jump`` list is not followed (the
    chain is spelled out in full on the target that uses it)."""
    async with db.session() as s:
        t = await s.get(SshTarget, target_id)
        if t is None:
            raise NotFound(f"unknown ssh target {target_id}", code="unknown_target")
        chain = []
        for jid in t.jump:
            hop = await s.get(SshTarget, jid)
            if hop is None:
                raise HostError(f"jump target {jid} of {t.name!r} no longer exists")
            chain.append(hop)
        extra = await load_values(s, fields, [target_id])
    try:
        # The plugins' fields are those of the target; a hop only carries the connection.
        return [*(to_spec(x, box) for x in chain), to_spec(t, box, extra[target_id])]
    except ValueError as exc:
        raise HostError(f"{t.name}: {exc}", code="ssh_credentials") from exc
