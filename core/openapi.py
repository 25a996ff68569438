"""The OpenAPI 3.1 document of every route the app serves, built from its own router.

Nothing here lists routes. The document is the router (core and every loaded plugin,
including routes added through ``archnest_routes``) walked once at startup, so a
route cannot be served without being documented:

- what a route does, takes and answers is declared next to its handler with
  ``@operation(summary=..., request=Model, responses={200: Model})``; pydantic models
  become the schemas (``components.schemas``);
- the security of a route is not declared at all: it is ``required_role`` of
  :mod:`.auth`, the same function the auth middleware enforces (``x-archnest-role``);
- a handler without ``@operation`` (a third-party plugin that declares nothing) is still
  in the document, with a generic JSON answer, its role and its errors.

Errors share one ``Error`` schema. :mod:`.apidoc` renders docs/api.md from the same
document (``python -m archnest.apidoc > docs/api.md``).

HTML pages and htmx fragments are documented too (``text/html``): they are routes of the
router like any other, so the document lists the router exactly, with no exclusion list
to keep up to date. Left out: static files, aiohttp's own 404/405 routes, and HEAD.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from .auth import SESSION_COOKIE, is_websocket, public, required_role

OPENAPI_PATH = "/api/openapi.json"
OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
ERROR_SCHEMA = "Error"
# What each error status means in this API (the statuses docs/api.md lists, plus the bounds).
ERROR_STATUSES: dict[int, str] = {
    400: "Bad input (malformed JSON, an invalid reference or parameter).",
    401: "No credentials, or bad ones.",
    403: "Signed in, but not allowed (a viewer on an admin route, or a cross-origin request).",
    404: "Unknown host, container or object.",
    409: "Conflict with the current state (a name already taken).",
    413: "Request body too large.",
    429: "Over a bound (login attempts, streams, terminals); see Retry-After.",
    501: "The source of this host cannot do this (read-only agent hosts).",
    502: "The host answered with an error.",
    503: "Feature disabled by the server's configuration.",
    504: "The host did not answer in time.",
}
# aiohttp adds a HEAD route beside every GET (same handler); HEAD is implied by GET in
# HTTP, so the document lists the GET only.
UNDOCUMENTED_METHODS = frozenset({"HEAD"})
STAR_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Content:
    """A response or request body that is not (only) a JSON model: a media type with an
    optional schema (a type pydantic can describe, or a JSON schema dict)."""

    media_type: str
    schema: Any = None
    description: str = ""


@dataclass(frozen=True)
class Param:
    """A query (or path) parameter."""

    name: str
    description: str
    type: str = "string"
    enum: tuple[str, ...] | None = None
    required: bool = False
    repeated: bool = False  # ?host=a&host=b


@dataclass(frozen=True)
class Operation:
    """What ``@operation`` records on a handler."""

    summary: str
    description: str = ""
    tags: tuple[str, ...] = ()
    request: Any = None
    responses: Mapping[int, Any] = field(default_factory=dict)
    query: tuple[Param, ...] = ()
    path: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    own_auth: str | None = None


# Security schemes: the two ways a user authenticates, and the agent token the ingest
# route checks itself.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `archnest token create USER`.",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The browser session from `POST /login` or `POST /api/auth/login`. "
        "Unsafe methods and WebSockets must come from the same origin.",
    },
    "agentToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The agent token (ARCHNEST_AGENT_TOKEN), not a user's API token.",
    },
}
USER_SECURITY: list[dict[str, list[str]]] = [{"bearerToken": []}, {"sessionCookie": []}]

# Path parameters the core's route trees share; a handler may describe others.
PATH_PARAMS: dict[str, Param] = {
    "host_id": Param("host_id", "A host id of any source: `<source>:<key>`, e.g. `docker:3`."),
    "ref": Param(
        "ref",
        "A container id (hex, 12-64) or name (`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`); "
        "anything else is 400 before any host is contacted.",
    ),
    "id": Param("id", "The numeric id of the configured host or target.", type="integer"),
    "host": Param("host", "The host name the agent reports as."),
}

OPERATION_ATTR = "__archnest_operation__"
OPENAPI_KEY = web.AppKey("archnest_openapi", bytes)


def operation(
    summary: str,
    *,
    description: str = "",
    tags: tuple[str, ...] | list[str] = (),
    request: Any = None,
    responses: Mapping[int, Any] | None = None,
    query: tuple[Param, ...] | list[Param] = (),
    path: tuple[Param, ...] | list[Param] = (),
    errors: tuple[int, ...] | list[int] = (),
    own_auth: str | None = None,
) -> Callable[[H], H]:
    """Describe a handler for the OpenAPI document.

    ``request``: a pydantic model (or any type) for a JSON body, or a :class:`Content`.
    ``responses``: status -> a type (JSON), a :class:`Content`, a tuple of them (one
    status, several media types) or None (no body). ``errors``: statuses beyond those
    the route table implies (401/403 by role, 404 for path parameters, 400/413 for a
    body). ``own_auth``: the security scheme a public handler checks itself.
    """
    meta = Operation(
        summary=summary,
        description=description,
        tags=tuple(tags),
        request=request,
        responses=dict(responses or {200: Content("application/json", {})}),
        query=tuple(query),
        path=tuple(path),
        errors=tuple(errors),
        own_auth=own_auth,
    )

    def mark(handler: H) -> H:
        setattr(handler, OPERATION_ATTR, meta)
        return handler

    return mark


def operation_of(handler: Any) -> Operation | None:
    return getattr(getattr(handler, "__func__", handler), OPERATION_ATTR, None)


def documented_routes(app: web.Application) -> Iterator[tuple[str, str, Any]]:
    """(method, path template, handler) of every route the document describes: all of
    the router but static files, aiohttp's own system routes and HEAD."""
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        method = route.method.upper()
        if method in UNDOCUMENTED_METHODS:
            continue
        for m in STAR_METHODS if method == "*" else (method,):
            yield m, resource.canonical, route.handler


class _Schemas:
    """Collects component schemas; refuses two different schemas under one name."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {ERROR_SCHEMA: _error_schema()}

    def add(self, name: str, schema: dict[str, Any]) -> None:
        known = self.components.get(name)
        if known is not None and known != schema:
            raise ValueError(f"two different schemas are named {name!r}")
        self.components[name] = schema

    def of(self, tp: Any) -> dict[str, Any]:
        if tp is None:
            return {}
        if isinstance(tp, dict):
            return tp
        schema = _json_schema(tp)
        for name, sub in schema.pop("$defs", {}).items():
            self.add(name, sub)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            # A private model (``_Index``) still gets a readable schema name.
            name = tp.__name__.lstrip("_")
            self.add(name, schema)
            return {"$ref": REF.format(model=name)}
        return schema


def _json_schema(tp: Any) -> dict[str, Any]:
    """A fresh copy of ``tp``'s JSON schema. pydantic builds one in milliseconds, a
    document needs a hundred, and every app built in a process (each test's) asks for
    the same ones: they are made once per type."""
    try:
        cached = _SCHEMA_CACHE.get(tp)
    except TypeError:  # an unhashable annotation: built each time
        return TypeAdapter(tp).json_schema(ref_template=REF)
    if cached is None:
        cached = _SCHEMA_CACHE[tp] = TypeAdapter(tp).json_schema(ref_template=REF)
    return copy.deepcopy(cached)


_SCHEMA_CACHE: dict[Any, dict[str, Any]] = {}


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Every error answer of the API.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable machine code."},
                    "message": {"type": "string", "description": "For people."},
                    "field": {
                        "type": "string",
                        "description": "The body field the error is about, when there is"
                        " one (forms show the message next to it).",
                    },
                },
            }
        },
    }


def _content(schemas: _Schemas, body: Any) -> dict[str, Any]:
    items = body if isinstance(body, tuple) else (body,)
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, Content):
            has_schema = item.schema is not None
            out[item.media_type] = {"schema": schemas.of(item.schema)} if has_schema else {}
        else:
            out["application/json"] = {"schema": schemas.of(item)}
    return out


def _describe(body: Any, status: int) -> str:
    items = body if isinstance(body, tuple) else (body,)
    text = " ".join(i.description for i in items if isinstance(i, Content) and i.description)
    defaults = {101: "Switching Protocols (WebSocket)", 204: "No content", 302: "Redirect"}
    defaults[303] = "Redirect (See Other)"
    return text or defaults.get(status, "OK")


def _param(p: Param, where: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": p.type}
    if p.enum:
        schema["enum"] = list(p.enum)
    if p.repeated:
        schema = {"type": "array", "items": schema}
    out: dict[str, Any] = {
        "name": p.name,
        "in": where,
        "required": True if where == "path" else p.required,
        "description": p.description,
        "schema": schema,
    }
    if p.repeated:
        out["style"], out["explode"] = "form", True
    return out


_PLACEHOLDER = re.compile(r"\{([^}:]+)\}")


def _operation(
    schemas: _Schemas, method: str, path: str, handler: Any
) -> tuple[dict[str, Any], str]:
    meta = operation_of(handler)
    websocket = is_websocket(handler)
    if meta is None:
        # Declared nothing (a third-party route): still listed, with what the policy knows.
        meta = Operation(
            summary=f"{method} {path}",
            description="Undocumented by its plugin.",
            responses={200: Content("application/json", {})},
        )
    role = required_role(method, handler)
    op: dict[str, Any] = {"summary": meta.summary}
    if meta.description:
        op["description"] = meta.description
    op["tags"] = list(meta.tags) or [_tag_of(path)]
    op["operationId"] = _operation_id(method, path)
    declared = {p.name: p for p in meta.path}
    names = _PLACEHOLDER.findall(path)
    params = [_param(declared.get(n) or PATH_PARAMS.get(n) or Param(n, n), "path") for n in names]
    params += [_param(p, "query") for p in meta.query]
    if params:
        op["parameters"] = params
    errors = set(meta.errors)
    if meta.request is not None:
        op["requestBody"] = {"required": True, "content": _content(schemas, meta.request)}
        errors |= {400, 413}
    if role is not None:
        errors.add(401)
    if role == "admin":
        errors.add(403)
    if names:
        errors.add(404)
    responses: dict[str, Any] = {}
    for status, body in sorted(meta.responses.items()):
        entry: dict[str, Any] = {"description": _describe(body, status)}
        if body is not None:
            entry["content"] = _content(schemas, body)
        responses[str(status)] = entry
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERROR_STATUSES.get(status, "Error."),
            "content": {"application/json": {"schema": {"$ref": REF.format(model=ERROR_SCHEMA)}}},
        }
    op["responses"] = responses
    if role is None:
        op["security"] = [{meta.own_auth: []}] if meta.own_auth else []
    else:
        op["security"] = USER_SECURITY
    op["x-archnest-role"] = role or "public"
    if websocket:
        op["x-archnest-websocket"] = True
    return op, role or "public"


def _tag_of(path: str) -> str:
    parts = [p for p in path.split("/") if p and not p.startswith("{")]
    if parts[:1] == ["api"]:
        parts = parts[1:]
    return parts[0] if parts else "ui"


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path.replace("{", "by_").replace("}", "")).strip("_")
    return f"{method.lower()}_{words or 'root'}"


def build_document(app: web.Application, *, version: str = "") -> dict[str, Any]:
    """The OpenAPI document of ``app``'s router as it is now."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in documented_routes(app):
        op, _ = _operation(schemas, method, path, handler)
        item = paths.setdefault(path, {})
        if method.lower() in item:
            raise ValueError(f"{method} {path} is registered twice")
        item[method.lower()] = op
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "ArchNest Containers",
            "version": version or _version(),
            "description": "Every HTTP route the app serves, with the loaded plugins. "
            "`x-archnest-role` is the role a route needs (public, viewer, admin); "
            "WebSocket routes are GETs with an upgrade (`x-archnest-websocket`).",
        },
        "paths": {p: dict(sorted(paths[p].items())) for p in sorted(paths)},
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _version() -> str:
    from . import __version__

    return __version__


# Public: it describes routes, never data, and a client needs it before it signs in.
@public
@operation(
    "This document: OpenAPI 3.1 of every route of the running app",
    tags=("meta",),
    responses={200: Content("application/json", {"type": "object"})},
)
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_KEY], content_type="application/json")


def setup_openapi(app: web.Application) -> None:
    """Serve ``GET /api/openapi.json``, built once at startup when the router is final."""
    app.router.add_get(OPENAPI_PATH, openapi_json)

    async def build(app: web.Application) -> None:
        app[OPENAPI_KEY] = json.dumps(build_document(app), sort_keys=False).encode()

    app.on_startup.append(build)
