"""``/api/ssh/targets``: CRUD and host-key scanning (reference: docs/api.md)."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, create_model

from ..bodies import read_model
from ..containers import RowId, parse_row_id
from ..keys import DB_KEY, SECRETS_KEY
from ..openapi import operation
from . import SSH_POOL_KEY, probe
from . import targets as store
from .fields import SshTargetFields, ssh_target_fields
from .settings_page import setup_settings_page

MAX_BODY = 256 * 1024  # keys and certificates are a few KiB

# The view and the bodies are built per app (``_models``): the loaded plugins' fields
# (``archnest_ssh_target_fields``) join the core's, so the document describes exactly
# what this app accepts and returns.
VIEW_FIELDS: dict[str, Any] = {
    "id": (int, ...),
    "name": (str, ...),
    "host": (str, ...),
    "port": (int, ...),
    "username": (str, ...),
    "auth": (Literal["key", "password", "certificate"], ...),
    "jump": (list[int], ...),
    "host_keys": (list[str], ...),
    "host_key_fingerprints": (list[str], ...),
    # plugins' fields go here
    "has_private_key": (bool, ...),
    "has_passphrase": (bool, ...),
    "has_password": (bool, ...),
    "has_certificate": (bool, ...),
    "created_at": (str | None, ...),
    "updated_at": (str | None, ...),
}
UPDATE_FIELDS: dict[str, Any] = {
    "name": (str | None, None),
    "host": (str | None, None),
    "port": (int | None, None),
    "username": (str | None, None),
    "auth": (Literal["key", "password", "certificate"] | None, None),
    "private_key": (str | None, None),
    "passphrase": (str | None, None),
    "password": (str | None, None),
    "certificate": (str | None, None),
    "jump": (list[int] | None, None),
    "host_keys": (list[str] | None, None),
    # plugins' fields go here
}


def _models(fields: list[SshTargetFields]) -> tuple[type[BaseModel], ...]:
    """SshTargetView, SshTargetUpdate and SshTargetCreate with the plugins' fields."""
    view_extra = {}
    update_extra = {}
    for ext in fields:
        for name, info in ext.model.model_fields.items():
            view_extra[name] = (info.annotation, Field(..., description=info.description))
            update_extra[name] = (
                info.annotation | None,  # type: ignore[operator]
                Field(None, description=info.description),
            )
    cut = list(VIEW_FIELDS).index("host_key_fingerprints") + 1
    view_items = list(VIEW_FIELDS.items())
    view = create_model(  # type: ignore[call-overload]
        "SshTargetView",
        __doc__="A target as the API shows it: never a credential, only whether one is set.",
        **dict(view_items[:cut]),
        **view_extra,
        **dict(view_items[cut:]),
    )
    update = create_model(  # type: ignore[call-overload]
        "SshTargetUpdate",
        __doc__="Fields of a target; a PATCH sends any of them, a POST at least name, host "
        "and\nusername. Secrets are write-only; null clears one.",
        __config__=ConfigDict(extra="forbid"),  # an unknown field is refused, not ignored
        **UPDATE_FIELDS,
        **update_extra,
    )
    create = create_model(
        "SshTargetCreate", __base__=update, name=(str, ...), host=(str, ...), username=(str, ...)
    )
    return view, update, create


class SshTargetDeleted(BaseModel):
    ok: bool
    id: int


class HostKeyScan(BaseModel):
    """The key a server presents. Nothing is trusted until it is saved in ``host_keys``."""

    host_key: str = Field(description='The public key line to pin ("ssh-ed25519 AAAA...").')
    algorithm: str
    fingerprint: str = Field(description="OpenSSH's SHA256 fingerprint (`SHA256:...`).")
    trusted: bool = Field(description="The same as `matches` (kept for older clients).")
    matches: bool = Field(description="The presented key is one of the pinned keys.")
    pinned: list[str] = Field(description="Fingerprints of the keys pinned so far.")


class HostKeyScanRequest(BaseModel):
    """A host to scan before its target is saved, reached through saved jump targets."""

    model_config = ConfigDict(extra="forbid")
    host: str
    port: int = 22
    jump: list[int] = Field(default_factory=list, description="Saved target ids, in order.")
    host_keys: list[str] = Field(
        default_factory=list, description="Keys pinned so far, to compare the scan with."
    )


class ConnectionTest(BaseModel):
    """A successful login (nothing is run): what the server said about itself."""

    ok: bool
    server_version: str = Field(description='The SSH banner, e.g. "SSH-2.0-OpenSSH_9.2p1".')
    algorithm: str | None
    fingerprint: str | None = Field(description="The pinned key the server proved it holds.")
    hops: int = Field(description="Jump hosts passed through.")
    seconds: float


class TargetField(BaseModel):
    """A field a loaded plugin adds to every SSH target (forms render it from this)."""

    name: str
    type: str = Field(description="JSON schema type: boolean, string, integer or number.")
    title: str
    description: str | None
    default: Any


TEST_DESCRIPTION = (
    "Connects through the jump chain with the pinned host keys and the credentials, "
    "authenticates, and closes; nothing is run. The pooled connection of a saved target "
    "is not used. A key that is not pinned is 409 `host_key_changed` (or "
    "`host_key_not_pinned`) with `presented` and `pinned` fingerprints in the error; a "
    "refused login is 502 `ssh_auth_failed`, a closed port 502 `ssh_refused`, no answer "
    "504. `field` names the part at fault (`jump.N` for a hop)."
)


def _target_id(request: web.Request) -> int:
    return parse_row_id(request.match_info["id"], "ssh target", code="unknown_target")


def setup_routes(app: web.Application) -> None:
    fields = ssh_target_fields(app)
    view, update, create = _models(fields)

    @operation("SSH targets", tags=("ssh",), responses={200: list[view]})  # type: ignore[valid-type]
    async def list_targets(request: web.Request) -> web.Response:
        return web.json_response(await store.list_views(request.app[DB_KEY], fields))

    @operation("One SSH target", tags=("ssh",), responses={200: view})
    async def get_target(request: web.Request) -> web.Response:
        target_id = _target_id(request)
        return web.json_response(await store.get_view(request.app[DB_KEY], target_id, fields))

    @operation(
        "Add an SSH target", tags=("ssh",), request=create, responses={201: view}, errors=(409,)
    )
    async def create_target(request: web.Request) -> web.Response:
        # Only the fields sent: the store tells absent (kept) from null (clears a secret).
        data = (await read_model(request, create, MAX_BODY)).model_dump(exclude_unset=True)
        app = request.app
        target = await store.create_target(app[DB_KEY], app[SECRETS_KEY], data, fields)
        return web.json_response(target, status=201)

    @operation(
        "Change an SSH target (connections using it are re-made)",
        tags=("ssh",),
        request=update,
        responses={200: view},
        errors=(409,),
    )
    async def update_target(request: web.Request) -> web.Response:
        target_id = _target_id(request)
        data = (await read_model(request, update, MAX_BODY)).model_dump(exclude_unset=True)
        app = request.app
        target = await store.update_target(app[DB_KEY], app[SECRETS_KEY], target_id, data, fields)
        # New credentials, keys, hops or plugin fields must take effect on the next command.
        app[SSH_POOL_KEY].forget(target_id)
        return web.json_response(target)

    @operation("Remove an SSH target", tags=("ssh",), responses={200: SshTargetDeleted})
    async def delete_target(request: web.Request) -> web.Response:
        target_id = _target_id(request)
        await store.delete_target(request.app[DB_KEY], target_id, fields)
        request.app[SSH_POOL_KEY].forget(target_id)
        return web.json_response({"ok": True, "id": target_id})

    test_body = create_model(  # type: ignore[call-overload]
        "SshTargetTest",
        __base__=update,
        __doc__="A target to test without saving it: the fields of a POST, or those of a "
        "PATCH\nover the saved target `base` (its stored credentials fill in what is left "
        "out).",
        base=(RowId | None, Field(None, description="A saved target to start from.")),
    )

    @operation(
        "Test a target that is not saved (or unsaved changes of one)",
        description=TEST_DESCRIPTION,
        tags=("ssh",),
        request=test_body,
        responses={200: ConnectionTest},
        errors=(409, 502, 504),
    )
    async def test_draft(request: web.Request) -> web.Response:
        data = (await read_model(request, test_body, MAX_BODY)).model_dump(exclude_unset=True)
        base = data.pop("base", None)
        app = request.app
        chain = await probe.draft_chain(app[DB_KEY], app[SECRETS_KEY], data, fields, base=base)
        return await _run_test(app, chain)

    @operation(
        "Test a saved target, with changes not saved yet",
        description="The body is a `PATCH` body: the fields sent replace the stored ones "
        "for this test only (an absent secret keeps the stored one); `{}` (or no body) "
        "tests the target as saved. " + TEST_DESCRIPTION,
        tags=("ssh",),
        request=update,
        responses={200: ConnectionTest},
        errors=(409, 502, 504),
    )
    async def test_target(request: web.Request) -> web.Response:
        target_id = _target_id(request)
        app = request.app
        changes: dict[str, Any] = {}
        if request.body_exists:
            changes = (await read_model(request, update, MAX_BODY)).model_dump(exclude_unset=True)
        db, box = app[DB_KEY], app[SECRETS_KEY]
        if changes:
            await store.get_target(db, target_id)  # 404 for an unknown id, not a 400
            chain = await probe.draft_chain(db, box, changes, fields, base=target_id)
        else:
            chain = await store.load_chain(db, box, target_id, fields)
        return await _run_test(app, chain)

    @operation(
        "Fetch the host key of a target that is not saved yet",
        description="Reached through the saved jump targets `jump` (each verified against "
        "its own pinned keys); compared with `host_keys`. Nothing is trusted or saved.",
        tags=("ssh",),
        request=HostKeyScanRequest,
        responses={200: HostKeyScan},
        errors=(409, 502, 504),
    )
    async def scan_draft(request: web.Request) -> web.Response:
        data = (await read_model(request, HostKeyScanRequest, MAX_BODY)).model_dump()
        app = request.app
        chain = await probe.draft_chain(
            app[DB_KEY], app[SECRETS_KEY], data, fields, need_login=False
        )
        pool = app[SSH_POOL_KEY]
        try:
            result = await probe.scan_chain(
                chain, connect_timeout=pool.connect_timeout, keepalive=pool.keepalive
            )
        except probe.HostKeyRefused as exc:
            return web.json_response(exc.body(), status=exc.status)
        return web.json_response(result)

    @operation(
        "Fields the loaded plugins add to SSH targets",
        tags=("ssh",),
        responses={200: list[TargetField]},
    )
    async def target_fields(request: web.Request) -> web.Response:
        return web.json_response(describe_fields(fields))

    app.router.add_get("/api/ssh/target-fields", target_fields)
    app.router.add_post("/api/ssh/targets/scan-host-key", scan_draft)
    app.router.add_post("/api/ssh/targets/test", test_draft)
    app.router.add_get("/api/ssh/targets", list_targets)
    app.router.add_post("/api/ssh/targets", create_target)
    app.router.add_get("/api/ssh/targets/{id}", get_target)
    app.router.add_patch("/api/ssh/targets/{id}", update_target)
    app.router.add_delete("/api/ssh/targets/{id}", delete_target)
    app.router.add_post("/api/ssh/targets/{id}/scan-host-key", scan_host_key)
    app.router.add_post("/api/ssh/targets/{id}/test", test_target)
    setup_settings_page(app)


async def _run_test(app: web.Application, chain: list) -> web.Response:
    pool = app[SSH_POOL_KEY]
    try:
        result = await probe.test_chain(
            chain, connect_timeout=pool.connect_timeout, keepalive=pool.keepalive
        )
    except probe.HostKeyRefused as exc:
        return web.json_response(exc.body(), status=exc.status)
    return web.json_response(result)


def describe_fields(fields: list[SshTargetFields]) -> list[dict[str, Any]]:
    """The plugins' target fields as forms need them (from their pydantic models)."""
    out = []
    for ext in fields:
        props = ext.model.model_json_schema().get("properties", {})
        for name in ext.model.model_fields:
            prop = props.get(name, {})
            out.append(
                {
                    "name": name,
                    "type": prop.get("type", "string"),
                    "title": prop.get("title", name),
                    "description": prop.get("description"),
                    "default": prop.get("default"),
                }
            )
    return out


@operation(
    "Fetch the host key the target presents, with its SHA256 fingerprint",
    description="Reached through the target's pinned jump hosts. `matches` says whether it "
    "is one of the pinned keys (`pinned`: their fingerprints). Nothing is trusted until an "
    "admin saves the key into `host_keys`.",
    tags=("ssh",),
    responses={200: HostKeyScan},
    errors=(502, 504),
)
async def scan_host_key(request: web.Request) -> web.Response:
    result = await request.app[SSH_POOL_KEY].scan(_target_id(request))
    return web.json_response(result)
