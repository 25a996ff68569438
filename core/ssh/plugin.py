"""Hook implementations of the core SSH transport (targets API and the pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial

from aiohttp import web

from ..keys import DB_KEY, SECRETS_KEY, SETTINGS_KEY
from ..plugins import hookimpl
from . import SSH_POOL_KEY
from .pool import SshPool
from .routes import setup_routes
from .targets import load_chain


def _float(app: web.Application, name: str, default: float) -> float:
    raw = app[SETTINGS_KEY].extra.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        return default


async def ssh_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    host_timeout = app[SETTINGS_KEY].host_timeout
    pool = SshPool(
        partial(load_chain, app[DB_KEY], app[SECRETS_KEY]),
        # Below the per-host request timeout, so an unreachable host reports why.
        connect_timeout=_float(app, "ARCHNEST_SSH_CONNECT_TIMEOUT", max(1.0, host_timeout * 0.8)),
        command_timeout=_float(app, "ARCHNEST_SSH_COMMAND_TIMEOUT", 30.0),
        keepalive=_float(app, "ARCHNEST_SSH_KEEPALIVE", 15.0),
        idle_seconds=_float(app, "ARCHNEST_SSH_IDLE_SECONDS", 300.0),
        max_commands=int(_float(app, "ARCHNEST_SSH_MAX_COMMANDS", 4)),
        max_channels=int(_float(app, "ARCHNEST_SSH_MAX_CHANNELS", 10)),
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
