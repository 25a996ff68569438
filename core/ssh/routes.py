"""``/api/ssh/targets``: CRUD and host-key scanning (api.md "Source ssh")."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from ..auth import require_json
from ..containers import parse_row_id
from ..keys import DB_KEY, SECRETS_KEY
from ..openapi import operation
from . import SSH_POOL_KEY
from . import targets as store


class SshTargetView(BaseModel):
    """A target as the API shows it: never a credential, only whether one is set."""

    id: int
    name: str
    host: str
    port: int
    username: str
    auth: Literal["key", "password", "certificate"]
    jump: list[int]
    host_keys: list[str]
    host_key_fingerprints: list[str]
    docker: bool
    sudo: bool
    has_private_key: bool
    has_passphrase: bool
    has_password: bool
    has_certificate: bool
    created_at: str | None
    updated_at: str | None


class SshTargetUpdate(BaseModel):
    """Fields of a target; a PATCH sends any of them, a POST at least name, host and
    username. Secrets are write-only; null clears one."""

    name: str | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    auth: Literal["key", "password", "certificate"] | None = None
    private_key: str | None = None
    passphrase: str | None = None
    password: str | None = None
    certificate: str | None = None
    jump: list[int] | None = None
    host_keys: list[str] | None = None
    docker: bool | None = None
    sudo: bool | None = None


class SshTargetCreate(SshTargetUpdate):
    name: str
    host: str
    username: str


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


@operation("SSH targets", tags=("ssh",), responses={200: list[SshTargetView]})
async def list_targets(request: web.Request) -> web.Response:
    rows = await store.list_targets(request.app[DB_KEY])
    return web.json_response([store.public_view(t) for t in rows])


@operation("One SSH target", tags=("ssh",), responses={200: SshTargetView})
async def get_target(request: web.Request) -> web.Response:
    t = await store.get_target(request.app[DB_KEY], _target_id(request))
    return web.json_response(store.public_view(t))


@operation(
    "Add an SSH target",
    tags=("ssh",),
    request=SshTargetCreate,
    responses={201: SshTargetView},
    errors=(409,),
)
async def create_target(request: web.Request) -> web.Response:
    data = await require_json(request, 256 * 1024)
    t = await store.create_target(request.app[DB_KEY], request.app[SECRETS_KEY], data)
    return web.json_response(store.public_view(t), status=201)


@operation(
    "Change an SSH target (connections using it are re-made)",
    tags=("ssh",),
    request=SshTargetUpdate,
    responses={200: SshTargetView},
    errors=(409,),
)
async def update_target(request: web.Request) -> web.Response:
    target_id = _target_id(request)
    data = await require_json(request, 256 * 1024)
    t = await store.update_target(request.app[DB_KEY], request.app[SECRETS_KEY], target_id, data)
    # New credentials, keys or hops must take effect on the next command.
    request.app[SSH_POOL_KEY].forget(target_id)
    return web.json_response(store.public_view(t))


@operation("Remove an SSH target", tags=("ssh",), responses={200: SshTargetDeleted})
async def delete_target(request: web.Request) -> web.Response:
    target_id = _target_id(request)
    await store.delete_target(request.app[DB_KEY], target_id)
    request.app[SSH_POOL_KEY].forget(target_id)
    return web.json_response({"ok": True, "id": target_id})


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


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/ssh/targets", list_targets)
    app.router.add_post("/api/ssh/targets", create_target)
    app.router.add_get("/api/ssh/targets/{id}", get_target)
    app.router.add_patch("/api/ssh/targets/{id}", update_target)
    app.router.add_delete("/api/ssh/targets/{id}", delete_target)
    app.router.add_post("/api/ssh/targets/{id}/scan-host-key", scan_host_key)
