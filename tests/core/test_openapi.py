"""The OpenAPI document (GET /api/openapi.json) and the router list the same operations,
with the security the route table enforces; docs/api.md is the document rendered."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
from aiohttp import web
from archnest import create_app, hookimpl
from archnest.apidoc import render_markdown, shipped_document, shipped_plugins
from archnest.auth import required_role
from archnest.openapi import build_document, operation, operation_of
from archnest.testing import make_user_headers
from openapi_spec_validator import validate
from pydantic import BaseModel

from tests.plugins.hookplugin import HookPlugin

ROOT = Path(__file__).resolve().parents[2]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


class Widget(BaseModel):
    id: int
    name: str


def _extra_plugin() -> SimpleNamespace:
    """A third-party plugin: one route described with @operation, one not at all."""

    @operation("A widget", responses={200: Widget})
    async def described(request: web.Request) -> web.Response:
        return web.json_response({"id": 1, "name": "w"})

    async def undescribed(request: web.Request) -> web.Response:
        return web.json_response({})

    @hookimpl
    def archnest_routes(app: web.Application) -> None:
        app.router.add_get("/api/extra/widgets/{id}", described)
        app.router.add_delete("/api/extra/widgets/{id}", undescribed)

    return SimpleNamespace(__name__="extra_plugin", archnest_routes=archnest_routes)


@pytest.fixture
async def full_client(aiohttp_client, archnest_settings):
    """The real app with the shipped plugins, the hook test plugin and a third-party one."""
    app = create_app(archnest_settings, extra_plugins=[HookPlugin(), _extra_plugin()])
    return await aiohttp_client(app)


def router_operations(app: web.Application) -> dict[tuple[str, str], object]:
    """(method, path template) -> handler, read from the router independently of the
    module under test. Left out, on purpose: static file routes (/static/...), aiohttp's
    own 404/405 system routes (no resource) and HEAD, which aiohttp adds beside every
    GET. HTML pages and htmx fragments are NOT left out: they are routes like any other
    and the document describes them as text/html, so no page can escape this test."""
    ops: dict[tuple[str, str], object] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        if route.method == "HEAD":
            twins = [r for r in resource if r.method == "GET" and r.handler is route.handler]
            assert twins, f"HEAD {resource.canonical} is not the twin of a GET"
            continue
        ops[(route.method, resource.canonical)] = route.handler
    return ops


def document_operations(doc: dict) -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


async def _document(client) -> dict:
    r = await client.get("/api/openapi.json")
    assert r.status == 200, await r.text()
    return await r.json()


async def test_openapi_document_needs_no_auth_and_is_valid_openapi_31(archnest_client):
    r = await archnest_client.get("/api/openapi.json")  # no credentials at all
    assert r.status == 200
    assert r.content_type == "application/json"
    doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on anything that is not valid OpenAPI 3.1
    op = doc["paths"]["/api/openapi.json"]["get"]
    assert op["security"] == [] and op["x-archnest-role"] == "public"


async def test_router_and_document_list_the_same_operations(full_client):
    doc = await _document(full_client)
    validate(doc)
    in_router = set(router_operations(full_client.app))
    in_doc = set(document_operations(doc))
    assert in_router - in_doc == set(), "routes missing from the document"
    assert in_doc - in_router == set(), "documented operations the router does not serve"
    # The walk really covers core, shipped plugins, the hook plugin and the extra plugin.
    for expected in [
        ("GET", "/api/hosts/{host_id}/containers/{ref}"),
        ("POST", "/api/docker/hosts"),
        ("GET", "/api/docker-ssh/exec"),
        ("POST", "/api/agents/docker/report"),
        ("PATCH", "/api/ssh/targets/{id}"),
        ("GET", "/ui/hosts/{host_id}/containers/{ref}"),
        ("POST", "/api/hooktest/items"),
        ("GET", "/api/extra/widgets/{id}"),
        ("DELETE", "/api/extra/widgets/{id}"),
    ]:
        assert expected in in_doc
    assert len(in_doc) >= 50


async def test_every_operation_has_a_response_schema_and_the_route_tables_security(full_client):
    doc = await _document(full_client)
    ops = document_operations(doc)
    for (method, path), handler in router_operations(full_client.app).items():
        op = ops[(method, path)]
        where = f"{method} {path}"
        role = required_role(method, handler)
        assert op["x-archnest-role"] == (role or "public"), where
        if role is None:
            assert op["security"] in ([], [{"agentToken": []}]), where
        else:
            assert op["security"] == [{"bearerToken": []}, {"sessionCookie": []}], where
            assert "401" in op["responses"], where
            # 403 for every admin route; a viewer route only where its handler says so
            # (an admin-only query of a self-service route, a cross-origin cookie).
            meta = operation_of(handler)
            declared = 403 in meta.errors if meta else False
            assert ("403" in op["responses"]) == (role == "admin" or declared), where
        success = [s for s in op["responses"] if int(s) < 400]
        assert success, f"{where}: no success response"
        for status, resp in op["responses"].items():
            if int(status) >= 400 and "content" in resp and "application/json" in resp["content"]:
                assert resp["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, f"{where} {status}"
            for media, content in resp.get("content", {}).items():
                if media == "application/json":
                    assert "schema" in content, f"{where} {status}: JSON without a schema"
    # WebSockets are GETs marked as such, answering 101 after the upgrade.
    for path in ("/api/exec", "/api/docker/exec", "/api/docker-ssh/exec"):
        op = ops[("GET", path)]
        assert op["x-archnest-websocket"] is True and op["x-archnest-role"] == "admin"
        assert "101" in op["responses"]
    # Followed logs are documented as server-sent events.
    logs = ops[("GET", "/api/hosts/{host_id}/containers/{ref}/logs")]
    assert "text/event-stream" in logs["responses"]["200"]["content"]
    # The agent ingest names the token it checks itself.
    assert ops[("POST", "/api/agents/docker/report")]["security"] == [{"agentToken": []}]


async def test_third_party_routes_are_documented_with_or_without_metadata(full_client):
    doc = await _document(full_client)
    ops = document_operations(doc)
    described = ops[("GET", "/api/extra/widgets/{id}")]
    assert described["summary"] == "A widget"
    assert described["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Widget"
    }
    assert doc["components"]["schemas"]["Widget"]["required"] == ["id", "name"]
    bare = ops[("DELETE", "/api/extra/widgets/{id}")]
    assert bare["x-archnest-role"] == "admin"
    assert set(bare["responses"]) >= {"200", "401", "403", "404"}
    assert [p["name"] for p in bare["parameters"]] == ["id"]


async def test_every_shipped_route_declares_its_operation(archnest_client):
    # Core and built-in plugins describe each route next to its handler; only routes of
    # plugins we do not ship may fall back to the generic description.
    missing = [
        f"{m} {p}"
        for (m, p), handler in router_operations(archnest_client.app).items()
        if operation_of(handler) is None
    ]
    assert missing == []


async def test_real_answers_match_their_documented_schemas(full_client):
    doc = await _document(full_client)
    ops = document_operations(doc)
    admin = await make_user_headers(full_client, "alice", "admin")

    async def check(path: str, template: str) -> None:
        r = await full_client.get(path, headers=admin)
        assert r.status == 200, f"{path}: {r.status} {await r.text()}"
        schema = ops[("GET", template)]["responses"]["200"]["content"]["application/json"]
        resolver = {"components": doc["components"], **schema["schema"]}
        jsonschema.validate(await r.json(), resolver)

    await check("/healthz", "/healthz")
    await check("/api/plugins", "/api/plugins")
    await check("/api/auth/me", "/api/auth/me")
    await check("/api/hosts", "/api/hosts")
    await check("/api/containers", "/api/containers")
    await check("/api/hosts/hooktest:one/containers", "/api/hosts/{host_id}/containers")
    await check("/api/hosts/hooktest:one/containers/web", "/api/hosts/{host_id}/containers/{ref}")
    await check("/api/ssh/targets", "/api/ssh/targets")
    await check("/api/docker/hosts", "/api/docker/hosts")
    await check("/api/agents/docker/hosts", "/api/agents/docker/hosts")
    # And a wrong answer really fails the check.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            [{"id": "x"}],
            {"components": doc["components"], "$ref": "#/components/schemas/HostInfo"},
        )


async def test_the_served_document_is_the_router_at_startup(full_client):
    assert await _document(full_client) == build_document(full_client.app)


def test_docs_api_md_is_generated_from_the_document():
    assert shipped_plugins() == ["docker_agent", "docker_ssh", "docker_tcp"]
    doc = shipped_document()
    validate(doc)
    committed = (ROOT / "docs" / "api.md").read_text()
    assert committed == render_markdown(doc), (
        "docs/api.md is out of date: python -m archnest.apidoc > docs/api.md"
    )
