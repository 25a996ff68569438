"""Every hook a plugin can implement, in one place.

Call convention: the core calls hooks with keyword arguments only; a plugin may accept
any subset of the documented arguments (pluggy passes only what the implementation
names). Each docstring says what the hook receives and what it returns. The full guide
with examples is ``docs/plugin-authors.md``; a contract test keeps both in sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from aiohttp import web

    from .containers import ContainerDetail
    from .plugin_config import PluginSettings
    from .plugin_types import Assets, MigrationLineage, NavItem, Panel
    from .sources import HostInfo, HostSource
    from .ssh.fields import SshTargetFields

hookspec = pluggy.HookspecMarker("archnest")


@hookspec
def archnest_host_sources(app: web.Application) -> list[HostSource]:
    """Return the ``HostSource`` objects this plugin provides (may be empty).

    Called once at startup; the core calls ``start()``/``close()`` on each.
    """


@hookspec
def archnest_routes(app: web.Application) -> None:
    """Add aiohttp routes to ``app.router``; returns nothing.

    Authorisation comes from the route table: GET/HEAD need a viewer, every other
    method and every ``@websocket`` handler needs an admin; ``@public`` opts out.
    """


@hookspec
def archnest_cleanup_ctx(
    app: web.Application,
) -> Callable[[web.Application], AsyncIterator[None]] | None:
    """Return an async generator function for ``app.cleanup_ctx`` (pools, tasks), or None."""


@hookspec
def archnest_migrations() -> MigrationLineage | None:
    """Return this plugin's Alembic lineage (name + versions folder), or None."""


@hookspec
def archnest_ssh_target_fields() -> SshTargetFields | None:
    """Return the fields this plugin adds to every SSH target (kept in its own table).

    The core accepts them in ``/api/ssh/targets`` bodies, returns them with each target
    and passes them to the plugin in ``ConnectSpec.extra``.
    """


@hookspec
def archnest_assets() -> Assets | None:
    """Return the plugin's template and static folders, served under its namespace."""


@hookspec
def archnest_nav_items(request: web.Request) -> list[NavItem]:
    """Return navigation entries for the page being rendered for ``request``."""


@hookspec
def archnest_settings_nav(request: web.Request) -> list[NavItem]:
    """Return the plugin's sections of the admin-only Settings area (its side navigation)."""


@hookspec
def archnest_container_panels(
    request: web.Request, host: HostInfo, container: ContainerDetail
) -> list[Panel]:
    """Return extra tabs for a container's detail view (rendered after the built-in ones)."""


@hookspec
def archnest_plugin_info() -> dict[str, Any] | None:
    """Return facts shown by ``GET /api/plugins`` / ``archnest plugins`` (e.g. its sources)."""


@hookspec
def archnest_plugin_settings() -> type[PluginSettings] | None:
    """Return the plugin's settings class (a frozen ``PluginSettings`` dataclass), or None.

    Parsed once while the app is built; read the values with ``plugin_settings(app, cls)``.
    """
