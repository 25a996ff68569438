"""HTTP routes of the ``docker`` source (reference: docs/api.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from archnest import (
    SOURCES_KEY,
    NotFound,
    add_container_routes,
    operation,
    read_model,
    source_resolver,
    with_timeout,
)
from pydantic import BaseModel, ConfigDict, Field

from .client import EngineConfig
from .source import DockerEngineSource, parse_engine_id
from .store import NAME_MAX, public_view

PREFIX = "/api/docker"
MAX_BODY = 256 * 1024  # PEM material is a few KiB; anything bigger is not an engine config
# Request bodies: validated by these models (``read_model``), so what the document says
# is what is enforced; an unknown field is refused rather than silently ignored.
STRICT = ConfigDict(extra="forbid")
# PEM is printable ASCII with line breaks (RFC 7468); OpenSSL takes nothing else.
PEM_TEXT = r"^[\t\n\r\x20-\x7e]*$"


class TlsInput(BaseModel):
    """PEM material; stored encrypted, never shown again. An absent field keeps its
    stored value; "" or null clears it."""

    model_config = STRICT

    ca: str | None = Field(None, pattern=PEM_TEXT)
    cert: str | None = Field(None, pattern=PEM_TEXT)
    key: str | None = Field(None, pattern=PEM_TEXT)
    verify: bool = True


URL_DOC = "unix:///path, tcp://host:port or https://host:port (https with tls)"


class EngineCreate(BaseModel):
    model_config = STRICT

    name: str = Field(min_length=1, max_length=NAME_MAX)
    url: str = Field(description=URL_DOC)
    tls: TlsInput | None = None


def _not_sent(schema: dict[str, Any]) -> None:
    # A default of null would document null as a value; it only stands for "absent".
    schema.pop("default", None)


class EngineUpdate(BaseModel):
    """Any of the fields; the others keep their values. name and url cannot be null."""

    model_config = STRICT

    # Absent is allowed, null is not: the default only marks "not sent".
    name: str = Field(  # type: ignore[assignment]
        None, min_length=1, max_length=NAME_MAX, json_schema_extra=_not_sent
    )
    url: str = Field(None, description=URL_DOC, json_schema_extra=_not_sent)  # type: ignore[assignment]
    tls: TlsInput | None = None


class EngineTest(EngineCreate):
    """What ``POST /api/docker/hosts`` takes, the name optional: settings to try first."""

    name: str = Field(  # type: ignore[assignment]
        None, min_length=1, max_length=NAME_MAX, json_schema_extra=_not_sent
    )


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


class EngineFacts(BaseModel):
    """What an engine says about itself: versions, platform and counts."""

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


class EngineInfo(EngineFacts):
    host_id: str
    name: str


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
    body = await read_model(request, EngineCreate, MAX_BODY)
    row = await _source(request).store.create(body.model_dump(exclude_unset=True))
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
    body = await read_model(request, EngineUpdate, MAX_BODY)
    source = _source(request)
    # Only what was sent: an absent field keeps its value, null clears a TLS file.
    row = await source.store.update(engine_id, body.model_dump(exclude_unset=True))
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


TEST_DOC = (
    "Connects with the settings on a connection of its own, under the per-host timeout, "
    "and closes it; nothing is saved. 200: the engine's versions and counts. A refused "
    "connection, a TLS failure (the engine's certificate, our client certificate) or an "
    "engine error is a 502 and a silent engine a 504, each with a message saying what "
    "failed; settings that cannot work (url, PEM) are a 400 naming the field "
    "(`url`, `tls.ca`, `tls.cert`, `tls.key`)."
)


@operation(
    "Test connection with settings not saved yet",
    description="The body of `POST /api/docker/hosts`; `name` may be left out. " + TEST_DOC,
    request=EngineTest,
    responses={200: EngineFacts},
    errors=(502, 504),
)
async def try_new_engine(request: web.Request) -> web.Response:
    body = await read_model(request, EngineTest, MAX_BODY)
    source = _source(request)
    cfg = await source.store.preview(body.model_dump(exclude_unset=True))
    return web.json_response(await _check(request, source, cfg))


@operation(
    "Test connection of a configured engine, with changes not saved yet",
    description="The body is a `PATCH` body: the fields sent replace the stored ones for "
    'this test only (an absent TLS field keeps the stored PEM, `null` or `""` leaves it '
    "out); `{}` (or no body) tests the engine as saved. " + TEST_DOC,
    request=EngineUpdate,
    responses={200: EngineFacts},
    errors=(502, 504),
)
async def try_engine(request: web.Request) -> web.Response:
    engine_id = _engine_id(request.match_info["id"])
    changes: dict[str, Any] = {}
    if request.body_exists:
        body = await read_model(request, EngineUpdate, MAX_BODY)
        changes = body.model_dump(exclude_unset=True)
    source = _source(request)
    cfg = await source.store.preview(changes, engine_id)
    return web.json_response(await _check(request, source, cfg))


async def _check(
    request: web.Request, source: DockerEngineSource, cfg: EngineConfig
) -> dict[str, Any]:
    return await with_timeout(request.app, source.check(cfg), f"engine at {cfg.url}")


_resolve = source_resolver(DockerEngineSource.name)


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/hosts", list_engines)
    app.router.add_post(f"{PREFIX}/hosts", create_engine)
    app.router.add_post(f"{PREFIX}/hosts/test", try_new_engine)
    app.router.add_get(PREFIX + "/hosts/{id}", get_engine)
    app.router.add_patch(PREFIX + "/hosts/{id}", update_engine)
    app.router.add_delete(PREFIX + "/hosts/{id}", delete_engine)
    app.router.add_get(PREFIX + "/hosts/{id}/info", engine_info)
    app.router.add_post(PREFIX + "/hosts/{id}/test", try_engine)
    add_container_routes(
        app, PREFIX + "/hosts/{id}", DockerEngineSource.name, exec_path=f"{PREFIX}/exec"
    )
