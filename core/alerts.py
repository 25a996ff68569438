"""The alert evaluator: every ``ARCHNEST_ALERTS_INTERVAL`` seconds, on one replica, each
enabled rule's conditions (core/alert_conditions.py) become firing alerts, and alerts
whose condition is gone are resolved; each transition sends one notice to the rule's
channels (core/alert_delivery.py), unless the rule is snoozed.

- Deduplication: one firing row per (rule, host, container) until it resolves; a firing
  notice when the row is made, a resolved notice when it is resolved, and the resolved
  one only when the firing one was sent (a row opened while the rule was snoozed
  resolves quietly).
- Snooze: the rule still records alerts; no notice is sent while it lasts.
- Replicas: with PostgreSQL only the holder of an advisory lock evaluates
  (core/leader.py); the transitions themselves are safe anyway (core/alert_store.py), so
  a notice is sent only by the replica that made the transition.
- A host that could not be listed keeps its containers' alerts as they are.
- Deliveries run beside the evaluator: a slow channel never delays a round; a failure is
  recorded on the alert's row (``notice_error``) and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from . import alert_store as store
from .alert_conditions import CONTAINER_KINDS, HELD_KINDS, Fleet, active_conditions, read_fleet
from .alert_delivery import deliver
from .containers import iso_utc
from .daily import repeat
from .keys import DB_KEY, SECRETS_KEY, SETTINGS_KEY
from .leader import LeaderLock

log = logging.getLogger("archnest.alerts")

# "alerts" in ASCII: the advisory lock key of the evaluating replica.
LEADER_LOCK = 0x616C65727473


def notice(rule: store.Rule, row: Any, state: str) -> dict[str, Any]:
    """The webhook body (docs/alerts.md)."""
    at = row.started_at if state == "firing" else row.resolved_at
    return {
        "state": state,
        "rule": {"id": rule.id, "name": rule.name, "kind": rule.kind},
        "host_id": row.host_id,
        "container": row.container or None,
        "message": row.message,
        "at": iso_utc(store.utc(at)),
    }


class AlertEngine:
    def __init__(self, app: web.Application, interval: float) -> None:
        self.app = app
        self.interval = interval
        self.leader = LeaderLock(LEADER_LOCK)
        # When each not-yet-firing condition was first seen (for_seconds), by key.
        self.pending: dict[tuple[int, str, str], float] = {}
        self.deliveries: set[asyncio.Task] = set()
        self.rounds = 0
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # ---- notices ----------------------------------------------------------------
    async def send(self, channel_ids: list[int], body: dict[str, Any]) -> str | None:
        """Send one notice to these channels; None when every one took it."""
        app = self.app
        try:
            targets = await store.channel_targets(app[DB_KEY], app[SECRETS_KEY], channel_ids)
        except ValueError as exc:  # ARCHNEST_SECRET_KEY changed since a secret was stored
            return str(exc)
        results = await asyncio.gather(*(deliver(self.session, t, body) for t in targets))
        errors = [f"{t.name}: {e}" for t, e in zip(targets, results, strict=True) if e]
        return "; ".join(errors)[:2000] or None

    async def _deliver(self, rule: store.Rule, row: Any, state: str) -> None:
        try:
            error = await self.send(rule.channels, notice(rule, row, state))
            await store.record_notice(self.app[DB_KEY], row.id, state, error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("alert %s: %s notice not sent: %r", row.id, state, exc)

    async def _notify(self, rule: store.Rule, row: Any, state: str) -> None:
        if not rule.channels or rule.snoozed(store.now()):
            return
        # Marked before sending, so a resolution right after knows a firing notice went.
        await store.record_notice(self.app[DB_KEY], row.id, state, None)
        task = asyncio.create_task(self._deliver(rule, row, state), name="archnest-alert-notice")
        self.deliveries.add(task)
        task.add_done_callback(self.deliveries.discard)

    # ---- evaluation -------------------------------------------------------------
    async def _apply(
        self, rule: store.Rule, active: dict[tuple[str, str], str], firing: list[Any], fleet: Fleet
    ) -> None:
        db = self.app[DB_KEY]
        now = time.monotonic()
        open_keys = {(a.host_id, a.container): a for a in firing}
        for key, message in active.items():
            if key in open_keys:
                continue
            if rule.kind in HELD_KINDS and rule.for_seconds > 0:
                first = self.pending.setdefault((rule.id, *key), now)
                if now - first < rule.for_seconds:
                    continue
            row = await store.open_alert(db, rule.id, key[0], key[1], message)
            self.pending.pop((rule.id, *key), None)
            if row is not None:
                log.info("alert %s firing: %s", row.id, message)
                await self._notify(rule, row, "firing")
        for pending in [p for p in self.pending if p[0] == rule.id and p[1:] not in active]:
            del self.pending[pending]
        for key, alert in open_keys.items():
            if key in active:
                continue
            if rule.kind in CONTAINER_KINDS and key[0] in fleet.unreachable:
                continue  # unknown, not resolved
            row = await store.resolve_alert(db, alert.id)
            if row is not None:
                log.info("alert %s resolved", row.id)
                if row.firing_notice_at is not None:
                    await self._notify(rule, row, "resolved")

    async def round(self) -> None:
        self.rounds += 1
        db = self.app[DB_KEY]
        if not await self.leader.held(db.engine):
            return
        rules = await store.list_rules(db, enabled_only=True)
        firing: dict[int, list[Any]] = {}
        for row in await store.firing_alerts(db):
            firing.setdefault(row.rule_id, []).append(row)
        enabled = {r.id for r in rules}
        self.pending = {k: v for k, v in self.pending.items() if k[0] in enabled}
        for rule_id, rows in firing.items():
            if rule_id not in enabled:  # a disabled rule: its alerts resolve quietly
                for row in rows:
                    await store.resolve_alert(db, row.id)
        if not rules:
            return
        fleet = await read_fleet(self.app)
        for rule in rules:
            try:
                active = await active_conditions(self.app, rule, fleet)
                await self._apply(rule, active, firing.get(rule.id, []), fleet)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("alert rule %s (%s) not evaluated: %r", rule.id, rule.kind, exc)

    def start(self) -> None:
        self._task = asyncio.create_task(
            repeat(self.interval, self.round, "alert round"), name="archnest-alerts"
        )

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self.deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.leader.release()
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()


ALERTS_KEY = web.AppKey("archnest_alerts", AlertEngine)


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """For ``app.cleanup_ctx``, after the live state (the fleet is read from it)."""
    engine = app[ALERTS_KEY] = AlertEngine(app, app[SETTINGS_KEY].alerts_interval)
    engine.start()
    yield
    await engine.close()


__all__ = ["ALERTS_KEY", "AlertEngine", "alerts_ctx", "notice"]
