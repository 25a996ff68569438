"""Alerting over HTTP (docs/alerts.md): notification channels and rules (admins), the
alert history (viewers), and the Settings > Alerts page that drives them.

Who may call what is the route table's business (:mod:`.auth`): every mutation is an
admin route by its method; the channel and rule lists are ``@admin_only`` (they show an
admin's configuration); ``GET /api/alerts`` is open to viewers. Channel secrets and
Apprise URLs go in and never come out: a channel answers ``secret_set`` and, for
Apprise, a redacted URL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from . import alert_store as store
from .alert_conditions import KINDS
from .alerts import ALERTS_KEY
from .auth import admin_only
from .bodies import read_model
from .containers import parse_row_id
from .errors import BadRequest
from .keys import DB_KEY, SECRETS_KEY
from .openapi import Content, Param, operation
from .query import int_query

MAX_BODY = 64 * 1024
PAGE = Content("text/html", None, "An HTML page.")
CHANNEL_ID = Param("id", "The numeric id of a notification channel.", type="integer")
RULE_ID = Param("id", "The numeric id of an alert rule.", type="integer")
ChannelKind = Literal["webhook", "apprise"]
RowId = Annotated[int, Field(ge=1, le=2**31 - 1)]
HostId = Annotated[str, Field(min_length=1, max_length=160)]
LabelText = Annotated[str, Field(max_length=1024)]
RuleKind = Literal[
    "container_exited",
    "restart_loop",
    "unhealthy",
    "oom",
    "host_down",
    "agent_stale",
    "cpu_above",
    "mem_above",
]
assert set(RuleKind.__args__) == set(KINDS)  # type: ignore[attr-defined]


# ---- models ----------------------------------------------------------------------


class ChannelView(BaseModel):
    """A channel as the API shows it: never its secret, never an Apprise URL in full."""

    id: int
    name: str
    kind: ChannelKind
    url: str = Field(description="A webhook's URL; an Apprise URL redacted to its scheme.")
    secret_set: bool
    created_at: str | None


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    kind: ChannelKind
    url: str = Field(min_length=1, max_length=2048)
    secret: str | None = Field(
        None, max_length=512, description="Webhooks: the HMAC-SHA256 signing key."
    )


class ChannelUpdate(BaseModel):
    """Any of the fields; absent leaves one unchanged, ``secret: null`` removes it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=128)
    kind: ChannelKind | None = None
    url: str | None = Field(None, min_length=1, max_length=2048)
    secret: str | None = Field(None, max_length=512)


class Deleted(BaseModel):
    ok: bool
    id: int


class TestResult(BaseModel):
    ok: bool
    error: str | None = Field(description="Why the test notice did not arrive.")


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(
        default_factory=list, max_length=500, description="Host ids; empty: all."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Every label given must match (containers)."
    )
    project: str | None = Field(
        None, max_length=256, description="The compose project (`com.docker.compose.project`)."
    )


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    kind: RuleKind
    threshold: float | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="cpu_above/mem_above: a percentage; restart_loop: a number of restarts.",
    )
    for_seconds: int = Field(
        0,
        ge=0,
        le=30 * 86400,
        description="How long a condition holds before it fires; restart_loop and oom: "
        "the window looked back over.",
    )
    scope: Scope = Field(default_factory=Scope)
    channels: list[RowId] = Field(default_factory=list, max_length=50)
    enabled: bool = True


class RuleUpdate(BaseModel):
    """Any of the fields; absent leaves one unchanged."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=128)
    kind: RuleKind | None = None
    threshold: float | None = Field(None, ge=0, le=1_000_000)
    for_seconds: int | None = Field(None, ge=0, le=30 * 86400)
    scope: Scope | None = None
    channels: list[RowId] | None = Field(None, max_length=50)
    enabled: bool | None = None


class RuleView(BaseModel):
    id: int
    name: str
    kind: RuleKind
    threshold: float | None
    for_seconds: int
    scope: Scope
    channels: list[int]
    enabled: bool
    snoozed_until: str | None = Field(description="Notices are held back until then.")


class Snooze(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes: int = Field(ge=0, le=30 * 24 * 60, description="0: end the snooze.")


class AlertView(BaseModel):
    id: int
    rule_id: int
    host_id: str
    container: str | None
    state: Literal["firing", "resolved"]
    message: str
    started_at: str | None
    resolved_at: str | None
    notice_error: str | None = Field(description="Why the last notice failed, if it did.")


# ---- checks ----------------------------------------------------------------------


def _check_url(kind: str, url: str) -> str:
    url = url.strip()
    if kind == "webhook":
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest("a webhook URL must be http:// or https:// with a host", field="url")
        return url
    import apprise

    if not apprise.Apprise().add(url):
        raise BadRequest("Apprise does not understand this URL", field="url")
    return url


def _check_rule(fields: dict[str, Any]) -> None:
    kind, threshold = fields["kind"], fields.get("threshold")
    if kind in ("cpu_above", "mem_above") and (threshold is None or not 0 < threshold <= 100_000):
        raise BadRequest(f"{kind} needs a threshold: a percentage above 0", field="threshold")
    if kind == "restart_loop":
        if threshold is None or threshold < 1:
            raise BadRequest(
                "restart_loop needs a threshold of at least 1 restart", field="threshold"
            )
        if fields.get("for_seconds", 0) < 1:
            raise BadRequest(
                "restart_loop needs for_seconds: the window the restarts are counted in",
                field="for_seconds",
            )


async def _check_channels(request: web.Request, ids: list[int]) -> None:
    known = await store.existing_channel_ids(request.app[DB_KEY], ids)
    missing = [i for i in ids if i not in known]
    if missing:
        raise BadRequest(f"unknown channel {missing[0]}", field="channels")


def _name(value: str) -> str:
    value = value.strip()
    if not value:
        raise BadRequest("name must not be blank", field="name")
    return value


# ---- channels --------------------------------------------------------------------


@admin_only
@operation("Notification channels", tags=("alerts",), responses={200: list[ChannelView]})
async def list_channels(request: web.Request) -> web.Response:
    box = request.app[SECRETS_KEY]
    rows = await store.list_channels(request.app[DB_KEY])
    return web.json_response([store.channel_view(r, box) for r in rows])


@operation(
    "Add a notification channel",
    description="`webhook`: an http(s) URL; each notice is signed with `secret` "
    "(`X-ArchNest-Signature: sha256=<hex HMAC-SHA256 of the body>`). `apprise`: any "
    "Apprise URL; it is stored encrypted and shown redacted.",
    tags=("alerts",),
    request=ChannelCreate,
    responses={201: ChannelView},
)
async def add_channel(request: web.Request) -> web.Response:
    body = await read_model(request, ChannelCreate, MAX_BODY)
    url = _check_url(body.kind, body.url)
    box = request.app[SECRETS_KEY]
    row = await store.create_channel(
        request.app[DB_KEY], box, _name(body.name), body.kind, url, body.secret or None
    )
    return web.json_response(store.channel_view(row, box), status=201)


@operation(
    "Change a notification channel",
    description="Absent fields stay; `secret: null` removes the secret. Changing `kind` "
    "needs a new `url`.",
    tags=("alerts",),
    request=ChannelUpdate,
    responses={200: ChannelView},
    path=(CHANNEL_ID,),
)
async def change_channel(request: web.Request) -> web.Response:
    channel_id = parse_row_id(request.match_info["id"], "channel", code="unknown_channel")
    body = await read_model(request, ChannelUpdate, MAX_BODY)
    db, box = request.app[DB_KEY], request.app[SECRETS_KEY]
    row = await store.get_channel(db, channel_id)
    changes = body.model_dump(exclude_unset=True)
    for key in ("name", "kind", "url"):
        if key in changes and changes[key] is None:
            del changes[key]
    if "name" in changes:
        changes["name"] = _name(changes["name"])
    kind = changes.get("kind") or row.kind
    if kind != row.kind and "url" not in changes:
        raise BadRequest("a channel of another kind needs its URL", field="url")
    if "url" in changes:
        changes["url"] = _check_url(kind, changes["url"])
    if changes.get("secret") == "":
        changes["secret"] = None
    row = await store.update_channel(db, box, channel_id, changes)
    return web.json_response(store.channel_view(row, box))


@operation(
    "Remove a notification channel (rules stop naming it)",
    tags=("alerts",),
    responses={200: Deleted},
    path=(CHANNEL_ID,),
)
async def remove_channel(request: web.Request) -> web.Response:
    channel_id = parse_row_id(request.match_info["id"], "channel", code="unknown_channel")
    await store.delete_channel(request.app[DB_KEY], channel_id)
    return web.json_response({"ok": True, "id": channel_id})


@operation(
    "Send a test notice to a channel and say whether it arrived",
    description="The notice has `state` `test`. Delivery is tried like any notice "
    "(5 s per attempt, three attempts).",
    tags=("alerts",),
    responses={200: TestResult},
    path=(CHANNEL_ID,),
)
async def test_channel(request: web.Request) -> web.Response:
    channel_id = parse_row_id(request.match_info["id"], "channel", code="unknown_channel")
    row = await store.get_channel(request.app[DB_KEY], channel_id)
    body = {
        "state": "test",
        "rule": {"id": None, "name": "Test notice", "kind": "test"},
        "host_id": None,
        "container": None,
        "message": f"A test notice from ArchNest to the channel {row.name}.",
        "at": store.iso_utc(store.now()),
    }
    error = await request.app[ALERTS_KEY].send([channel_id], body)
    return web.json_response({"ok": error is None, "error": error})


# ---- rules -----------------------------------------------------------------------


@admin_only
@operation("Alert rules", tags=("alerts",), responses={200: list[RuleView]})
async def list_rules(request: web.Request) -> web.Response:
    rules = await store.list_rules(request.app[DB_KEY])
    return web.json_response([r.view() for r in rules])


@operation(
    "Add an alert rule",
    description="Kinds and what they watch: docs/alerts.md. cpu_above/mem_above need a "
    "`threshold` (percent); restart_loop a `threshold` (restarts) and `for_seconds` (the "
    "window).",
    tags=("alerts",),
    request=RuleCreate,
    responses={201: RuleView},
)
async def add_rule(request: web.Request) -> web.Response:
    body = await read_model(request, RuleCreate, MAX_BODY)
    fields = body.model_dump()
    fields["name"] = _name(fields["name"])
    _check_rule(fields)
    await _check_channels(request, fields["channels"])
    rule = await store.create_rule(request.app[DB_KEY], fields)
    return web.json_response(rule.view(), status=201)


@operation(
    "Change an alert rule",
    description="Absent fields stay. Alerts that no longer match resolve at the next round.",
    tags=("alerts",),
    request=RuleUpdate,
    responses={200: RuleView},
    path=(RULE_ID,),
)
async def change_rule(request: web.Request) -> web.Response:
    rule_id = parse_row_id(request.match_info["id"], "rule", code="unknown_rule")
    body = await read_model(request, RuleUpdate, MAX_BODY)
    db = request.app[DB_KEY]
    rule = await store.get_rule(db, rule_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "threshold" in body.model_fields_set and body.threshold is None:
        changes["threshold"] = None
    if "name" in changes:
        changes["name"] = _name(changes["name"])
    merged = {**rule.view(), **changes}
    _check_rule(merged)
    if "channels" in changes:
        await _check_channels(request, changes["channels"])
    rule = await store.update_rule(db, rule_id, changes)
    return web.json_response(rule.view())


@operation(
    "Remove an alert rule and its alerts",
    tags=("alerts",),
    responses={200: Deleted},
    path=(RULE_ID,),
)
async def remove_rule(request: web.Request) -> web.Response:
    rule_id = parse_row_id(request.match_info["id"], "rule", code="unknown_rule")
    await store.delete_rule(request.app[DB_KEY], rule_id)
    return web.json_response({"ok": True, "id": rule_id})


@operation(
    "Snooze a rule: it still records alerts but sends no notice",
    description="`minutes: 0` ends the snooze. An alert that fired while snoozed sends no "
    "resolved notice either.",
    tags=("alerts",),
    request=Snooze,
    responses={200: RuleView},
    path=(RULE_ID,),
)
async def snooze_rule(request: web.Request) -> web.Response:
    rule_id = parse_row_id(request.match_info["id"], "rule", code="unknown_rule")
    body = await read_model(request, Snooze, MAX_BODY)
    until = store.now() + timedelta(minutes=body.minutes) if body.minutes else None
    rule = await store.update_rule(request.app[DB_KEY], rule_id, {"snoozed_until": until})
    return web.json_response(rule.view())


# ---- alerts ----------------------------------------------------------------------


@operation(
    "Alerts, newest first",
    tags=("alerts",),
    query=(
        Param("state", "Only alerts in this state.", enum=("firing", "resolved")),
        Param("rule_id", "Only the alerts of this rule.", type="integer"),
        Param("limit", "At most this many (1-1000, default 100).", type="integer"),
        Param("offset", "Skip this many first.", type="integer"),
    ),
    responses={200: list[AlertView]},
    errors=(400,),
)
async def list_alerts(request: web.Request) -> web.Response:
    state = request.query.get("state") or None
    if state not in (None, "firing", "resolved"):
        raise BadRequest("state must be firing or resolved", field="state")
    rows = await store.list_alerts(
        request.app[DB_KEY],
        state=state,
        rule_id=int_query(request, "rule_id", None, 1, 2**31 - 1),
        limit=int_query(request, "limit", 100, 1, 1000) or 100,
        offset=int_query(request, "offset", 0, 0, 1_000_000) or 0,
    )
    return web.json_response([store.alert_view(r) for r in rows])


# ---- page ------------------------------------------------------------------------


@admin_only
@operation(
    "Settings: notification channels, alert rules and the alert history",
    tags=("ui",),
    responses={200: PAGE},
)
@aiohttp_jinja2.template("core/settings_alerts.html")
async def settings_alerts(request: web.Request) -> dict[str, Any]:
    return {"kinds": KINDS}


def setup_alert_routes(app: web.Application) -> None:
    app.router.add_get("/api/alerts", list_alerts)
    app.router.add_get("/api/alerts/channels", list_channels)
    app.router.add_post("/api/alerts/channels", add_channel)
    app.router.add_patch("/api/alerts/channels/{id}", change_channel)
    app.router.add_delete("/api/alerts/channels/{id}", remove_channel)
    app.router.add_post("/api/alerts/channels/{id}/test", test_channel)
    app.router.add_get("/api/alerts/rules", list_rules)
    app.router.add_post("/api/alerts/rules", add_rule)
    app.router.add_patch("/api/alerts/rules/{id}", change_rule)
    app.router.add_delete("/api/alerts/rules/{id}", remove_rule)
    app.router.add_post("/api/alerts/rules/{id}/snooze", snooze_rule)
    app.router.add_get("/settings/alerts", settings_alerts)
