"""Authorisation is enforced by the route table: walk every route of the real app."""

from types import SimpleNamespace

import pytest
from aiohttp import web
from archnest import create_app, hookimpl, public
from archnest.auth import self_service
from archnest.testing import (
    PUBLIC_UNSAFE_ROUTES,
    SELF_SERVICE_ROUTES,
    check_route_protection,
    make_user_headers,
)


async def test_every_unsafe_and_websocket_route_is_admin_only(archnest_client, viewer_headers):
    # Sanity: the walk really covers the unsafe routes of the core and all loaded plugins.
    unsafe = [r for r in archnest_client.app.router.routes() if r.method not in ("GET", "HEAD")]
    assert len(unsafe) >= 5
    problems = await check_route_protection(archnest_client, viewer_headers)
    assert problems == []


async def test_public_unsafe_routes_are_exactly_the_allowlist(archnest_client):
    from archnest.auth import SAFE_METHODS, is_public

    found = set()
    for route in archnest_client.app.router.routes():
        if route.resource is None or route.method in SAFE_METHODS:
            continue
        if is_public(route.handler):
            found.add((route.method, route.resource.canonical))
    assert found <= PUBLIC_UNSAFE_ROUTES


async def test_self_service_routes_are_exactly_the_callers_own_account(archnest_client):
    from archnest.auth import SAFE_METHODS, is_self_service

    found = set()
    for route in archnest_client.app.router.routes():
        if route.resource is None or route.method == "HEAD":
            continue
        if is_self_service(route.handler):
            found.add((route.method, route.resource.canonical))
    assert found == {
        ("POST", "/api/auth/password"),
        ("GET", "/api/tokens"),
        ("POST", "/api/tokens"),
        ("DELETE", "/api/tokens/{id}"),
    }
    # The unsafe ones are the reviewed list the walker lets viewers call.
    assert {r for r in found if r[0] not in SAFE_METHODS} == SELF_SERVICE_ROUTES


async def test_users_and_settings_routes_are_admin_only(archnest_client):
    from archnest.auth import required_role

    checked = []
    for route in archnest_client.app.router.routes():
        if route.resource is None:
            continue
        path = route.resource.canonical
        if path.startswith(("/api/users", "/settings")):
            checked.append((route.method, path))
            assert required_role(route.method, route.handler) == "admin", (route.method, path)
    # The walk saw the users API and the settings pages, not an empty list.
    assert {("GET", "/api/users"), ("DELETE", "/api/users/{username}")} <= set(checked)
    assert {("GET", "/settings"), ("GET", "/settings/users")} <= set(checked)


def _evil_plugin(register):
    @hookimpl
    def archnest_routes(app: web.Application) -> None:
        register(app)

    return SimpleNamespace(__name__="evil_plugin", archnest_routes=archnest_routes)


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"deleted": "everything"})


async def _settings_page(request: web.Request) -> web.Response:
    return web.Response(text="<h1>secrets</h1>", content_type="text/html")


@pytest.mark.parametrize(
    "register",
    [
        # Opted out of the policy without being on the reviewed allowlist.
        pytest.param(lambda app: app.router.add_post("/api/evil", public(_ok)), id="public-post"),
        pytest.param(
            lambda app: app.router.add_delete("/api/evil/{id}", public(_ok)), id="public-delete"
        ),
        # Self-service without being on the reviewed list of the caller's own routes.
        pytest.param(
            lambda app: app.router.add_post("/api/evil", self_service(_ok)), id="self-service"
        ),
        # A settings page that forgot @admin_only is open to viewers.
        pytest.param(
            lambda app: app.router.add_get("/settings/evil", _settings_page), id="settings-get"
        ),
    ],
)
async def test_walker_catches_an_unprotected_mutating_route(
    aiohttp_client, archnest_settings, register
):
    app = create_app(archnest_settings, extra_plugins=[_evil_plugin(register)])
    client = await aiohttp_client(app)
    viewer = await make_user_headers(client, "victor", "viewer")
    problems = await check_route_protection(client, viewer)
    assert problems, "the walker must report the unprotected route"
    assert all("/evil" in p for p in problems), problems


async def test_viewer_may_read_but_not_mutate(archnest_client, viewer_headers):
    r = await archnest_client.get("/api/hosts", headers=viewer_headers)
    assert r.status == 200
    r = await archnest_client.get("/api/hosts")
    assert r.status == 401
    body = await r.json()
    assert body["error"]["code"] == "unauthorized"
