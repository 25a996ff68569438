"""The templates' base context is built only when a template is rendered, and a request
that renders none is freed by reference counting (no cycle through its context)."""

from __future__ import annotations

import gc
import weakref

import aiohttp_jinja2
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from archnest.web import _template_context_middleware


async def test_a_request_that_renders_nothing_is_freed_without_the_cyclic_collector() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=204)

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        request = make_mocked_request("POST", "/api/agents/docker/report")
        # A request without the middleware, as the reference: freed at once.
        plain = weakref.ref(make_mocked_request("GET", "/"))
        assert plain() is None
        freed = weakref.ref(request)
        await _template_context_middleware(request, handler)
        assert request[aiohttp_jinja2.REQUEST_CONTEXT_KEY] is not None
        del request
        assert freed() is None
    finally:
        if was_enabled:
            gc.enable()


async def test_pages_still_get_the_base_context(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = await archnest_client.get("/", headers=admin_headers)
    assert r.status == 200
    page = await r.text()
    # nav_items and the signed-in user come from the base context.
    assert "Containers" in page and 'href="/settings' in page
