"""Server-rendered pages of the Containers UI and the HTML partials htmx swaps in.

The partials call the same ``HostSource`` methods as the JSON routes under
``/api/hosts``; they are viewer-level GETs. A host failure is rendered as an inline
error (status 200) so htmx swaps it in instead of silently keeping stale content.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from .auth import current_user
from .containers import ContainerDetail, validate_ref
from .errors import ApiError, HostError, NotFound
from .hosts import list_all_containers, list_all_hosts
from .keys import PM_KEY, SOURCES_KEY
from .listing import (
    FILTER_QUERY,
    MAX_LIMIT,
    UI_PAGE_SIZE,
    Page,
    UiListing,
    pages,
    parse_ui_params,
    run_ui,
)
from .live import LIVE_KEY
from .openapi import Content, Param, operation
from .plugin_types import Panel
from .plugins import flatten
from .resolve import resolve_host_id, with_timeout
from .sources import HostInfo, HostSource
from .ui_format import install_filters

log = logging.getLogger("archnest.ui")

# Host statuses in the order the selector sorts them within a source group.
STATUS_ORDER = {"ok": 0, "stale": 1, "unknown": 2, "error": 3}
MANAGE_ACTIONS = ("start", "stop", "restart", "pause", "unpause", "remove")
PAGE_SIZES = (50, 100, 200, 500)  # what the pager offers; any 1-500 is accepted


# The pages and htmx partials are routes like any other, so they are in the OpenAPI
# document too (as text/html): the document then lists the router exactly.
PAGE = Content("text/html", None, "An HTML page.")
FRAGMENT = Content(
    "text/html", None, "An HTML fragment for htmx; a host failure is an inline error."
)


@operation("Redirect to the Containers page", tags=("ui",), responses={302: None})
async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/containers")


def _is_admin(request: web.Request) -> bool:
    user = current_user(request)
    return bool(user and user.role == "admin")


@operation("The Containers page", tags=("ui",), responses={200: PAGE})
@aiohttp_jinja2.template("core/containers.html")
async def containers_page(request: web.Request) -> dict[str, Any]:
    # The host id is only echoed into a data attribute (autoescaped); the partials
    # validate it when they resolve it.
    return {"current_host": request.query.get("host", "")[:300]}


async def _host_info(source: HostSource, host_id: str) -> HostInfo:
    """The stored facts of one host (no probe: the list was probed already)."""
    for host in await source.list_hosts():
        if host.id == host_id:
            return host
    raise NotFound(f"unknown host {host_id!r}", code="unknown_host")


def _error_fragment(request: web.Request, exc: Exception, what: str) -> web.Response:
    if isinstance(exc, ApiError):
        code, message = exc.code, exc.message
    else:  # a plugin bug stays that host's problem, but it is shown, never swallowed
        log.warning("%s failed: %r", what, exc)
        code, message = "internal", f"{type(exc).__name__}: {exc}"
    return aiohttp_jinja2.render_template(
        "core/_error.html", request, {"code": code, "message": message, "what": what}
    )


async def _guard(request: web.Request, what: str, coro: Awaitable[web.Response]) -> web.Response:
    try:
        return await coro
    except web.HTTPException:
        raise
    except Exception as exc:
        return _error_fragment(request, exc, what)


@operation("Fragment: the host selector", tags=("ui",), responses={200: FRAGMENT})
async def hosts_partial(request: web.Request) -> web.Response:
    """The host selector: every host of every source, grouped, with status badges."""
    hosts = await list_all_hosts(request.app)
    sources: dict[str, HostSource] = request.app[SOURCES_KEY]
    groups = []
    for name, source in sources.items():
        members = sorted(
            (h for h in hosts if h.source == name),
            key=lambda h: (STATUS_ORDER.get(h.status, 9), h.name.lower()),
        )
        groups.append({"source": name, "label": source.label or name, "hosts": members})
    return aiohttp_jinja2.render_template(
        "core/_hosts.html",
        request,
        {"groups": groups, "current_host": request.query.get("host", "")},
    )


# The list partials' query: what the filter box, the sort headers and the pager send.
# Bad values are a 400 naming the parameter (htmx shows it in the list); a page past the
# end is the last page instead, since rows may have gone since the link was made.
LIST_QUERY = (
    Param("all", "Include stopped containers.", type="boolean"),
    *FILTER_QUERY,
    Param("page", "Page number from 1; past the end is the last page.", type="integer"),
    Param("size", f"Rows per page, 1-{MAX_LIMIT} (default {UI_PAGE_SIZE}).", type="integer"),
)


@operation(
    "Fragment: the container table of one host",
    tags=("ui",),
    query=LIST_QUERY,
    responses={200: FRAGMENT},
    errors=(400,),
)
async def containers_partial(request: web.Request) -> web.Response:
    host_id = request.match_info["host_id"]
    show_all = request.query.get("all", "0") in ("1", "true", "on")
    ui = parse_ui_params(request.query, default_sort="name")

    async def render() -> web.Response:
        source, key = await resolve_host_id(request.app, host_id)
        host = await _host_info(source, host_id)
        live = request.app.get(LIVE_KEY)
        state = live.state_for(source, host.id) if live is not None else None
        if state is not None:  # watched: the live cache answers, even for a dead host
            items = await live.rows(state, host, show_all)  # type: ignore[union-attr]
            if host.status == "error" and host.updated_at is None:
                # Never reached: nothing to show but why (the same fragment as before).
                raise HostError(host.error or "the host could not be reached")
        else:
            items = await with_timeout(
                request.app, source.list_containers(key, all=show_all), host.name
            )
        # "" too: a source may leave a row's host_id empty; its host is still this one.
        page, number = run_ui(items, ui, {host.id: host.name, "": host.name})
        return aiohttp_jinja2.render_template(
            "core/_containers.html",
            request,
            {
                "host": host,
                "rows": [(c, host) for c in page.rows],
                "show_all": show_all,
                **_list_context(ui, page, number),
                **_table_context(request, [host]),
            },
        )

    return await _guard(request, f"containers of {host_id}", render())


@operation(
    "Fragment: the container table of all hosts",
    tags=("ui",),
    query=LIST_QUERY,
    responses={200: FRAGMENT},
    errors=(400,),
)
async def all_containers_partial(request: web.Request) -> web.Response:
    """One page of every host's containers in one table; a failed host is a warning
    above it."""
    show_all = request.query.get("all", "0") in ("1", "true", "on")
    ui = parse_ui_params(request.query, default_sort="host")

    async def render() -> web.Response:
        hosts, items = await list_all_containers(request.app, all=show_all)
        by_id = {h.id: h for h in hosts}
        page, number = run_ui(
            [c for c in items if c.host_id in by_id], ui, {h.id: h.name for h in hosts}
        )
        return aiohttp_jinja2.render_template(
            "core/_all_containers.html",
            request,
            {
                "hosts": hosts,
                "failed": [h for h in hosts if h.status in ("error", "stale")],
                "rows": [(c, by_id[c.host_id]) for c in page.rows],
                "show_all": show_all,
                **_list_context(ui, page, number),
                **_table_context(request, hosts),
            },
        )

    return await _guard(request, "the containers of all hosts", render())


def _list_context(ui: UiListing, page: Page, number: int) -> dict[str, Any]:
    """What the table's sort headers, pager and counts show."""
    return {
        "sort": ui.listing.sort,
        "order": ui.listing.order,
        "filtered": bool(ui.listing.filter),
        "where": ui.listing.filter.where,
        "page": number,
        "pages": pages(page.total, ui.size),
        "size": ui.size,
        "sizes": PAGE_SIZES,
        "total": page.total,
        "listed": page.listed,
        "first": page.offset + 1,
        "last": page.offset + len(page.rows),
    }


def _table_context(request: web.Request, hosts: list[HostInfo]) -> dict[str, Any]:
    """What the shared container table needs: which hosts get row quick actions."""
    admin = _is_admin(request)
    return {
        "ref_of": _ref_of,
        "manageable": {h.id for h in hosts if admin and h.capabilities.manage},
    }


def _ref_of(container: Any) -> str:
    """What the UI uses to address a container: its name when valid, else its id."""
    try:
        return validate_ref(container.name)
    except ApiError:
        return container.id[:64]


@operation(
    "Fragment: one container's detail with the plugin panels",
    tags=("ui",),
    responses={200: FRAGMENT},
)
async def detail_partial(request: web.Request) -> web.Response:
    host_id = request.match_info["host_id"]
    ref = request.match_info["ref"]

    async def render() -> web.Response:
        validate_ref(ref)
        source, key = await resolve_host_id(request.app, host_id)
        host = await _host_info(source, host_id)
        detail = await with_timeout(request.app, source.get_container(key, ref), host.name)
        panels = _plugin_panels(request, host, detail)
        return aiohttp_jinja2.render_template(
            "core/_detail.html",
            request,
            {
                "host": host,
                "c": detail,
                "ref": ref,
                "panels": panels,
                "can_manage": host.capabilities.manage and _is_admin(request),
                "can_exec": host.capabilities.exec and _is_admin(request),
                "actions": MANAGE_ACTIONS,
                "uid": _dom_id(host_id, ref),
            },
        )

    return await _guard(request, f"container {ref} on {host_id}", render())


def _dom_id(host_id: str, ref: str) -> str:
    # DOM ids from user-visible strings: keep only characters safe in CSS selectors.
    raw = f"{host_id}-{ref}"
    return "c-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in raw)


def _plugin_panels(
    request: web.Request, host: HostInfo, detail: ContainerDetail
) -> list[dict[str, Any]]:
    """Render each plugin panel; one broken panel shows its error, the rest still render."""
    out: list[dict[str, Any]] = []
    try:
        panels: list[Panel] = flatten(
            request.app[PM_KEY].hook.archnest_container_panels(
                request=request, host=host, container=detail
            )
        )
    except Exception as exc:
        log.warning("container panel hook failed: %r", exc)
        return [{"id": "plugin-error", "title": "Plugins", "html": _panel_error(exc)}]
    for panel in panels:
        try:
            if panel.template:
                env: jinja2.Environment = aiohttp_jinja2.get_env(request.app)
                # Rendered by the autoescaping environment: already safe HTML.
                html = Markup(env.get_template(panel.template).render(**panel.context))  # noqa: S704
            else:
                # Panel.html is documented as pre-escaped markup from the plugin.
                html = Markup(panel.html or "")  # noqa: S704
        except Exception as exc:
            log.warning("panel %s failed to render: %r", panel.id, exc)
            html = _panel_error(exc)
        out.append({"id": panel.id, "title": panel.title, "html": html})
    return out


def _panel_error(exc: Exception) -> Markup:
    return Markup('<p class="alert alert-error" role="alert">{}</p>').format(
        f"This panel failed: {type(exc).__name__}: {exc}"
    )


def setup_ui_routes(app: web.Application) -> None:
    install_filters(aiohttp_jinja2.get_env(app))
    app.router.add_get("/", index)
    app.router.add_get("/containers", containers_page)
    app.router.add_get("/ui/hosts", hosts_partial)
    app.router.add_get("/ui/containers", all_containers_partial)
    app.router.add_get("/ui/hosts/{host_id}/containers", containers_partial)
    app.router.add_get("/ui/hosts/{host_id}/containers/{ref}", detail_partial)
