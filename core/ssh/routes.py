"""``/api/ssh/targets``: CRUD and host-key scanning (reference: docs/api.md)."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, create_model

from ..bodies import read_model
from ..containers import parse_row_id
from ..keys import DB_KEY, SECRETS_KEY
from ..openapi import operation
from . import SSH_POOL_KEY
from . import targets as store
from .fields import SshTargetFields, ssh_target_fields

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
    host_key: str
    algorithm: str
    fingerprint: str
    trusted: bool


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

    app.router.add_get("/api/ssh/targets", list_targets)
    app.router.add_post("/api/ssh/targets", create_target)
    app.router.add_get("/api/ssh/targets/{id}", get_target)
    app.router.add_patch("/api/ssh/targets/{id}", update_target)
    app.router.add_delete("/api/ssh/targets/{id}", delete_target)
    app.router.add_post("/api/ssh/targets/{id}/scan-host-key", scan_host_key)


@operation(
    "Fetch the host key the target presents, with its SHA256 fingerprint",
    description="Nothing is trusted until an admin saves the key into `host_keys`.",
    tags=("ssh",),
    responses={200: HostKeyScan},
    errors=(502, 504),
)
async def scan_host_key(request: web.Request) -> web.Response:
    result = await request.app[SSH_POOL_KEY].scan(_target_id(request))
    return web.json_response(result)
