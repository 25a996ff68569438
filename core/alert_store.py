"""Alerting storage: the ``alert_channels``, ``alert_rules`` and ``alerts`` tables
(migration core_0009) and the reads and writes the routes and the evaluator share.

Channel secrets and Apprise URLs are stored encrypted with the app's SecretBox and never
leave this module except to be sent (:func:`channel_target`); what the API shows of a
channel is :func:`channel_view`.

Transitions are safe with several replicas writing at once: a firing row is inserted
under the unique partial index ``uq_alerts_firing`` (one firing row per rule, host and
container: a second insert fails and its replica sends nothing), and a row is resolved
with ``UPDATE ... WHERE state = 'firing'``: only the replica whose update changed the row
sends the resolved notice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .containers import iso_utc
from .db import Database
from .errors import NotFound
from .secrets import SecretBox

metadata = sa.MetaData()

alert_channels = sa.Table(
    "alert_channels",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("url", sa.Text(), nullable=True),
    sa.Column("url_encrypted", sa.Text(), nullable=True),
    sa.Column("secret_encrypted", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("threshold", sa.Float(), nullable=True),
    sa.Column("for_seconds", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("scope", sa.Text(), nullable=False, server_default="{}"),
    sa.Column("channels", sa.Text(), nullable=False, server_default="[]"),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column(
        "rule_id", sa.Integer(), sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("host_id", sa.String(160), nullable=False),
    sa.Column("container", sa.String(256), nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("message", sa.Text(), nullable=False, server_default=""),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("firing_notice_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_notice_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("notice_error", sa.Text(), nullable=True),
)


def now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; everything stored is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---- channels --------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelTarget:
    """What delivery needs: the URL and secret in the clear (never shown, never logged)."""

    id: int
    name: str
    kind: str
    url: str
    secret: str | None


def redact_url(url: str) -> str:
    """An Apprise URL for people: its scheme only (the rest often holds tokens)."""
    scheme = urlsplit(url).scheme or "apprise"
    return f"{scheme}://****"


def channel_view(row: Any, box: SecretBox) -> dict[str, Any]:
    if row.kind == "apprise":
        try:
            url = redact_url(box.decrypt(row.url_encrypted) or "")
        except ValueError:
            url = "****"
    else:
        url = row.url
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "url": url,
        "secret_set": row.secret_encrypted is not None,
        "created_at": iso_utc(utc(row.created_at)),
    }


def _channel_values(box: SecretBox, kind: str, url: str) -> dict[str, Any]:
    if kind == "apprise":
        return {"url": None, "url_encrypted": box.encrypt(url)}
    return {"url": url, "url_encrypted": None}


async def list_channels(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(sa.select(alert_channels).order_by(alert_channels.c.id))
        return list(rows)


async def get_channel(db: Database, channel_id: int) -> Any:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(sa.select(alert_channels).where(alert_channels.c.id == channel_id))
        ).first()
    if row is None:
        raise NotFound(f"unknown channel {channel_id}", code="unknown_channel")
    return row


async def create_channel(
    db: Database, box: SecretBox, name: str, kind: str, url: str, secret: str | None
) -> Any:
    at = now()
    values = {
        "name": name,
        "kind": kind,
        **_channel_values(box, kind, url),
        "secret_encrypted": box.encrypt(secret),
        "created_at": at,
        "updated_at": at,
    }
    async with db.engine.begin() as conn:
        result = await conn.execute(sa.insert(alert_channels).values(**values))
        new_id = result.inserted_primary_key[0]  # type: ignore[index]
    return await get_channel(db, new_id)


async def update_channel(
    db: Database, box: SecretBox, channel_id: int, changes: dict[str, Any]
) -> Any:
    """``changes``: any of name, kind, url, secret (None clears the secret). An Apprise
    channel's URL is kept when neither kind nor url changes."""
    row = await get_channel(db, channel_id)
    values: dict[str, Any] = {"updated_at": now()}
    if "name" in changes:
        values["name"] = changes["name"]
    kind = changes.get("kind") or row.kind
    if "url" in changes or kind != row.kind:
        url = changes.get("url")
        if url is None:  # a new kind needs a URL of its own: checked by the route
            url = row.url or box.decrypt(row.url_encrypted) or ""
        values.update(kind=kind, **_channel_values(box, kind, url))
    if "secret" in changes:
        values["secret_encrypted"] = box.encrypt(changes["secret"])
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.update(alert_channels).where(alert_channels.c.id == channel_id).values(**values)
        )
    return await get_channel(db, channel_id)


async def delete_channel(db: Database, channel_id: int) -> None:
    await get_channel(db, channel_id)
    async with db.engine.begin() as conn:
        await conn.execute(sa.delete(alert_channels).where(alert_channels.c.id == channel_id))
        # Rules name their channels in a JSON list: forget this one there too.
        rules = await conn.execute(sa.select(alert_rules.c.id, alert_rules.c.channels))
        for rule_id, raw in list(rules):
            ids = _ids(raw)
            if channel_id in ids:
                await conn.execute(
                    sa.update(alert_rules)
                    .where(alert_rules.c.id == rule_id)
                    .values(channels=json.dumps([i for i in ids if i != channel_id]))
                )


def channel_target(row: Any, box: SecretBox) -> ChannelTarget:
    url = row.url if row.kind == "webhook" else box.decrypt(row.url_encrypted)
    return ChannelTarget(row.id, row.name, row.kind, url or "", box.decrypt(row.secret_encrypted))


async def channel_targets(db: Database, box: SecretBox, ids: list[int]) -> list[ChannelTarget]:
    if not ids:
        return []
    async with db.engine.connect() as conn:
        rows = await conn.execute(sa.select(alert_channels).where(alert_channels.c.id.in_(ids)))
        return [channel_target(r, box) for r in rows]


# ---- rules -----------------------------------------------------------------------


def _ids(raw: str | None) -> list[int]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return [int(i) for i in value if isinstance(i, int)] if isinstance(value, list) else []


def _scope(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        value = {}
    value = value if isinstance(value, dict) else {}
    return {
        "hosts": list(value.get("hosts") or []),
        "labels": dict(value.get("labels") or {}),
        "project": value.get("project"),
    }


@dataclass
class Rule:
    id: int
    name: str
    kind: str
    threshold: float | None
    for_seconds: int
    scope: dict[str, Any]
    channels: list[int]
    enabled: bool
    snoozed_until: datetime | None

    def snoozed(self, at: datetime) -> bool:
        return self.snoozed_until is not None and self.snoozed_until > at

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "threshold": self.threshold,
            "for_seconds": self.for_seconds,
            "scope": self.scope,
            "channels": self.channels,
            "enabled": self.enabled,
            "snoozed_until": iso_utc(self.snoozed_until) if self.snoozed(now()) else None,
        }


def _rule(row: Any) -> Rule:
    return Rule(
        id=row.id,
        name=row.name,
        kind=row.kind,
        threshold=row.threshold,
        for_seconds=row.for_seconds,
        scope=_scope(row.scope),
        channels=_ids(row.channels),
        enabled=bool(row.enabled),
        snoozed_until=utc(row.snoozed_until),
    )


async def list_rules(db: Database, *, enabled_only: bool = False) -> list[Rule]:
    stmt = sa.select(alert_rules).order_by(alert_rules.c.id)
    if enabled_only:
        stmt = stmt.where(alert_rules.c.enabled.is_(True))
    async with db.engine.connect() as conn:
        return [_rule(r) for r in await conn.execute(stmt)]


async def get_rule(db: Database, rule_id: int) -> Rule:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(sa.select(alert_rules).where(alert_rules.c.id == rule_id))
        ).first()
    if row is None:
        raise NotFound(f"unknown rule {rule_id}", code="unknown_rule")
    return _rule(row)


def _rule_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in fields.items() if k not in ("scope", "channels")}
    if "scope" in fields:
        values["scope"] = json.dumps(fields["scope"], sort_keys=True)
    if "channels" in fields:
        values["channels"] = json.dumps(list(dict.fromkeys(fields["channels"])))
    return values


async def create_rule(db: Database, fields: dict[str, Any]) -> Rule:
    at = now()
    values = {**_rule_values(fields), "created_at": at, "updated_at": at}
    async with db.engine.begin() as conn:
        result = await conn.execute(sa.insert(alert_rules).values(**values))
        new_id = result.inserted_primary_key[0]  # type: ignore[index]
    return await get_rule(db, new_id)


async def update_rule(db: Database, rule_id: int, fields: dict[str, Any]) -> Rule:
    await get_rule(db, rule_id)
    values = {**_rule_values(fields), "updated_at": now()}
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.update(alert_rules).where(alert_rules.c.id == rule_id).values(**values)
        )
    return await get_rule(db, rule_id)


async def delete_rule(db: Database, rule_id: int) -> None:
    """The rule and its alerts (history included) go together."""
    await get_rule(db, rule_id)
    async with db.engine.begin() as conn:
        await conn.execute(sa.delete(alerts).where(alerts.c.rule_id == rule_id))
        await conn.execute(sa.delete(alert_rules).where(alert_rules.c.id == rule_id))


async def existing_channel_ids(db: Database, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(alert_channels.c.id).where(alert_channels.c.id.in_(ids))
        )
        return {r[0] for r in rows}


# ---- alerts ----------------------------------------------------------------------


def alert_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule_id": row.rule_id,
        "host_id": row.host_id,
        "container": row.container or None,
        "state": row.state,
        "message": row.message,
        "started_at": iso_utc(utc(row.started_at)),
        "resolved_at": iso_utc(utc(row.resolved_at)),
        "notice_error": row.notice_error,
    }


async def list_alerts(
    db: Database,
    *,
    state: str | None = None,
    rule_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Any]:
    stmt = sa.select(alerts)
    if state:
        stmt = stmt.where(alerts.c.state == state)
    if rule_id is not None:
        stmt = stmt.where(alerts.c.rule_id == rule_id)
    stmt = stmt.order_by(alerts.c.started_at.desc(), alerts.c.id.desc()).limit(limit).offset(offset)
    async with db.engine.connect() as conn:
        return list(await conn.execute(stmt))


async def firing_alerts(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        return list(await conn.execute(sa.select(alerts).where(alerts.c.state == "firing")))


async def open_alert(
    db: Database, rule_id: int, host_id: str, container: str, message: str
) -> Any | None:
    """Insert the firing row; None when one is firing already (another replica's)."""
    values = {
        "rule_id": rule_id,
        "host_id": host_id[:160],
        "container": container[:256],
        "state": "firing",
        "message": message,
        "started_at": now(),
    }
    try:
        async with db.engine.begin() as conn:
            result = await conn.execute(sa.insert(alerts).values(**values))
            new_id = result.inserted_primary_key[0]  # type: ignore[index]
    except IntegrityError:
        return None
    async with db.engine.connect() as conn:
        return (await conn.execute(sa.select(alerts).where(alerts.c.id == new_id))).first()


async def resolve_alert(db: Database, alert_id: int) -> Any | None:
    """Resolve a firing row; None when it was not firing (resolved by another replica)."""
    async with db.engine.begin() as conn:
        result = await conn.execute(
            sa.update(alerts)
            .where(alerts.c.id == alert_id, alerts.c.state == "firing")
            .values(state="resolved", resolved_at=now())
        )
        if result.rowcount != 1:
            return None
        return (await conn.execute(sa.select(alerts).where(alerts.c.id == alert_id))).first()


async def record_notice(db: Database, alert_id: int, state: str, error: str | None) -> None:
    """A notice was sent (``error``: why it failed on the channels that failed)."""
    column = "firing_notice_at" if state == "firing" else "resolved_notice_at"
    values: dict[str, Any] = {"notice_error": error, column: now()}
    async with db.engine.begin() as conn:
        await conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(**values))


__all__ = [
    "ChannelTarget",
    "Rule",
    "alert_view",
    "channel_view",
    "metadata",
]
