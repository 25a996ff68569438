"""HTTP routes of the ``docker`` source (api.md "Source docker")."""

from __future__ import annotations

from aiohttp import web
from archnest import (
    SOURCES_KEY,
    NotFound,
    add_container_routes,
    operation,
    require_json,
    source_resolver,
    with_timeout,
)
from pydantic import BaseModel

from .source import DockerEngineSource, parse_engine_id
from .store import public_view

PREFIX = "/api/docker"
MAX_BODY = 256 * 1024  # PEM material is a few KiB; anything bigger is not an engine config


class TlsInput(BaseModel):
    """PEM material; stored encrypted, never shown again."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True


class EngineCreate(BaseModel):
    name: str
    url: str  # unix:///path, tcp://host:port or https://host:port
    tls: TlsInput | None = None


class EngineUpdate(BaseModel):
    name: str | None = None
    url: str | None = None
    tls: TlsInput | None = None


class TlsView(BaseModel):
    verify: bool
    has_ca: bool
    has_cert: bool
    has_key: bool


class EngineView(BaseModel):
    id: int
    name: str
    url: str
    host_id: str
    tls: TlsView
    created_at: str | None
    updated_at: str | None


class EngineDeleted(BaseModel):
    ok: bool
    deleted: int


class EngineInfo(BaseModel):
    host_id: str
    name: str
    engine_version: str | None
    api_version: str | None
    negotiated_api_version: str | None
    min_api_version: str | None
    os: str | None
    arch: str | None
    kernel_version: str | None
    hostname: str | None
    containers: int | None
    running: int | None
    paused: int | None
    stopped: int | None
    images: int | None
    cpus: int | None
    mem_total_bytes: int | None


def _source(request: web.Request) -> DockerEngineSource:
    source = request.app[SOURCES_KEY].get(DockerEngineSource.name)
    if not isinstance(source, DockerEngineSource):
        raise NotFound("the docker source is not loaded", code="unknown_host")
    return source


def _engine_id(raw: str) -> int:
    return parse_engine_id(raw)


@operation("Configured Docker engines", responses={200: list[EngineView]})
async def list_engines(request: web.Request) -> web.Response:
    rows = await _source(request).store.all()
    return web.json_response([public_view(r) for r in rows])


@operation(
    "Add a Docker engine",
    request=EngineCreate,
    responses={201: EngineView},
    errors=(409,),
)
async def create_engine(request: web.Request) -> web.Response:
    body = await require_json(request, MAX_BODY)
    row = await _source(request).store.create(body)
    return web.json_response(public_view(row), status=201)


@operation("One configured engine", responses={200: EngineView})
async def get_engine(request: web.Request) -> web.Response:
    row = await _source(request).store.get(_engine_id(request.match_info["id"]))
    return web.json_response(public_view(row))


@operation(
    "Change an engine (the next call connects with the new settings)",
    request=EngineUpdate,
    responses={200: EngineView},
    errors=(409,),
)
async def update_engine(request: web.Request) -> web.Response:
    engine_id = _engine_id(request.match_info["id"])
    body = await require_json(request, MAX_BODY)
    source = _source(request)
    row = await source.store.update(engine_id, body)
    await source.drop(engine_id)  # the next call connects with the new settings
    return web.json_response(public_view(row))


@operation("Remove an engine", responses={200: EngineDeleted})
async def delete_engine(request: web.Request) -> web.Response:
    engine_id = _engine_id(request.match_info["id"])
    source = _source(request)
    await source.store.delete(engine_id)
    await source.drop(engine_id)
    return web.json_response({"ok": True, "deleted": engine_id})


@operation("Engine version, API version and counts", responses={200: EngineInfo}, errors=(502, 504))
async def engine_info(request: web.Request) -> web.Response:
    source, key = await _resolve(request)
    info = await with_timeout(request.app, source.info(key), "info")
    return web.json_response(info)


_resolve = source_resolver(DockerEngineSource.name)


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/hosts", list_engines)
    app.router.add_post(f"{PREFIX}/hosts", create_engine)
    app.router.add_get(PREFIX + "/hosts/{id}", get_engine)
    app.router.add_patch(PREFIX + "/hosts/{id}", update_engine)
    app.router.add_delete(PREFIX + "/hosts/{id}", delete_engine)
    app.router.add_get(PREFIX + "/hosts/{id}/info", engine_info)
    add_container_routes(
        app, PREFIX + "/hosts/{id}", DockerEngineSource.name, exec_path=f"{PREFIX}/exec"
    )
