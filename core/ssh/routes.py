"""``/api/ssh/targets``: CRUD and host-key scanning (api.md "Source ssh")."""

from __future__ import annotations

from aiohttp import web

from ..auth import require_json
from ..containers import parse_row_id
from ..keys import DB_KEY, SECRETS_KEY
from . import SSH_POOL_KEY
from . import targets as store


def _target_id(request: web.Request) -> int:
    return parse_row_id(request.match_info["id"], "ssh target", code="unknown_target")


async def list_targets(request: web.Request) -> web.Response:
    rows = await store.list_targets(request.app[DB_KEY])
    return web.json_response([store.public_view(t) for t in rows])


async def get_target(request: web.Request) -> web.Response:
    t = await store.get_target(request.app[DB_KEY], _target_id(request))
    return web.json_response(store.public_view(t))


async def create_target(request: web.Request) -> web.Response:
    data = await require_json(request, 256 * 1024)
    t = await store.create_target(request.app[DB_KEY], request.app[SECRETS_KEY], data)
    return web.json_response(store.public_view(t), status=201)


async def update_target(request: web.Request) -> web.Response:
    target_id = _target_id(request)
    data = await require_json(request, 256 * 1024)
    t = await store.update_target(request.app[DB_KEY], request.app[SECRETS_KEY], target_id, data)
    # New credentials, keys or hops must take effect on the next command.
    request.app[SSH_POOL_KEY].forget(target_id)
    return web.json_response(store.public_view(t))


async def delete_target(request: web.Request) -> web.Response:
    target_id = _target_id(request)
    await store.delete_target(request.app[DB_KEY], target_id)
    request.app[SSH_POOL_KEY].forget(target_id)
    return web.json_response({"ok": True, "id": target_id})


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
