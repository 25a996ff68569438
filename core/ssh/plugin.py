"""Hook implementations of the core SSH transport (targets API and the pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial

from aiohttp import web

from ..keys import DB_KEY, SECRETS_KEY, SETTINGS_KEY
from ..plugins import hookimpl
from . import SSH_POOL_KEY
from .fields import ssh_target_fields
from .pool import SshPool
from .routes import setup_routes
from .targets import load_chain


async def ssh_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    connect_timeout = settings.ssh_connect_timeout
    if connect_timeout is None:
        # Below the per-host request timeout, so an unreachable host reports why.
        connect_timeout = max(1.0, settings.host_timeout * 0.8)
    pool = SshPool(
        partial(load_chain, app[DB_KEY], app[SECRETS_KEY], fields=ssh_target_fields(app)),
        connect_timeout=connect_timeout,
        command_timeout=settings.ssh_command_timeout,
        keepalive=settings.ssh_keepalive,
        idle_seconds=settings.ssh_idle_seconds,
        max_commands=settings.ssh_max_commands,
        max_channels=settings.ssh_max_channels,
    )
    app[SSH_POOL_KEY] = pool
    await pool.start()
    try:
        yield
    finally:
        await pool.close()


@hookimpl
def archnest_cleanup_ctx(app: web.Application) -> Callable[[web.Application], AsyncIterator[None]]:
    return ssh_pool_ctx


@hookimpl
def archnest_routes(app: web.Application) -> None:
    setup_routes(app)
