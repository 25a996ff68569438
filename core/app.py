"""The application factory: one ``setup_*`` per concern, resources in cleanup contexts."""

from __future__ import annotations

import gc
import logging
import secrets
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from . import migrate
from .alerts import alerts_ctx
from .audit import make_audit_middleware
from .audit_chain import retention_ctx
from .auth import make_auth_middleware
from .db import Database, User
from .errors import error_middleware
from .headers import setup_security_headers
from .keys import (
    AUTH_CACHE_KEY,
    DB_KEY,
    OIDC_KEY,
    PASSWORD_VERIFIER_KEY,
    PM_KEY,
    SECRETS_KEY,
    SETTINGS_KEY,
    SOURCES_KEY,
    STREAMS_KEY,
    THROTTLE_KEY,
)
from .live import live_ctx
from .login_throttle import LoginThrottle, PasswordVerifier
from .metrics import metrics_middleware
from .oidc_client import OidcClient
from .plugin_config import PLUGIN_SETTINGS_KEY, load_plugin_settings
from .plugins import build_plugin_manager, flatten
from .secrets import SecretBox
from .settings import Settings
from .sources import HostSource
from .sso import header_user
from .stats_collector import stats_ctx
from .streams import StreamLimits, StreamRegistry
from .timeline import timeline_ctx
from .users import CredentialCache, count_users, create_user
from .web import setup_templates

log = logging.getLogger("archnest.app")
# Bodies aiohttp reads whole (request.read/post/json: sign-in forms). Routes that take
# large bodies stream them through read_body_limited with a limit of their own.
CLIENT_MAX_SIZE = 1024**2
# Part of the 10 s a SIGTERM may take: terminals end their remote process in this time.
STREAMS_SHUTDOWN_SECONDS = 4.0


# Allocations (net of frees) between two young-generation collections; CPython's
# default is 700. A server allocates tens of thousands of objects a second that
# reference counting frees at once (requests leave no cycles, see web.py); at 700 the
# young generation was collected every few requests, each time walking the requests
# then in flight: about 5 % of the event loop's time on the agent ingest
# (bench/agent_ingest.py, docs/performance.md), 0.4 % at 20,000.
GC_THRESHOLD = (20_000, 20, 20)
# How long a thread may hold the GIL while another waits for it (CPython: 5 ms). The
# event loop's thread is busy with Python code most of the time under load; the
# database threads (the agent ingest's writer, aiosqlite's) need the GIL back after
# every SQLite call and each waited up to the whole interval: at 0.2 ms the ingest's
# write took 1.7 instead of 2.5 ms of wall time per batch and 8 concurrent agents got
# ~10 % more reports through (bench/agent_ingest.py).
SWITCH_INTERVAL = 0.0002


def tune_interpreter() -> None:
    """The interpreter as the server runs it (``archnest serve``): the cyclic garbage
    collector and the GIL's switch interval."""
    # Everything imported and built so far lives as long as the process: moving it out
    # of the collector's reach makes each collection of per-request garbage cheaper.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    sys.setswitchinterval(SWITCH_INTERVAL)


def create_app(
    settings: Settings | None = None, extra_plugins: list[object] | None = None
) -> web.Application:
    """Build the app; nothing touches the network or the database until it starts."""
    settings = settings or Settings.from_env()
    settings.check_sso()
    settings.prepare_data_dir()
    auth_cache = CredentialCache()
    header_auth = None
    if settings.trusted_header_auth:

        async def header_auth(request: web.Request) -> User | None:
            return await header_user(request, request.app[DB_KEY], settings, auth_cache)

    app = web.Application(
        middlewares=[
            # Outermost: times each request and sees the status error_middleware gives.
            metrics_middleware,
            error_middleware,
            make_auth_middleware(lambda r: r.app[DB_KEY], auth_cache, header_auth),
            # After auth (it knows the user), around the handler (it records the result).
            make_audit_middleware(),
        ],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[SETTINGS_KEY] = settings
    app[SECRETS_KEY] = SecretBox(settings.ensure_secret_key())
    app[THROTTLE_KEY] = LoginThrottle.from_settings(settings)
    app[PASSWORD_VERIFIER_KEY] = verifier = PasswordVerifier.from_settings(settings)
    app.cleanup_ctx.append(verifier.cleanup_ctx)
    app[AUTH_CACHE_KEY] = auth_cache
    if settings.oidc_enabled:
        app[OIDC_KEY] = oidc = OidcClient(settings, settings.ensure_secret_key())
        app.cleanup_ctx.append(oidc.cleanup_ctx)
    pm = build_plugin_manager(settings.plugins, extra=extra_plugins)
    app[PM_KEY] = pm
    # Before any other hook, so a bad value stops startup with its variable's name.
    app[PLUGIN_SETTINGS_KEY] = load_plugin_settings(
        pm.hook.archnest_plugin_settings(), settings.plugin_env
    )
    app[SOURCES_KEY] = {}
    app[STREAMS_KEY] = StreamRegistry(
        StreamLimits(
            follows_per_user=settings.max_follows_per_user,
            follows_per_host=settings.max_follows_per_host,
            terminals_per_user=settings.max_terminals_per_user,
            terminals_per_host=settings.max_terminals_per_host,
        )
    )
    # First thing at shutdown (before the server waits for handlers and before the
    # sources close): end follows, close terminals and the processes behind them.
    app.on_shutdown.append(end_streams)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(bootstrap_admin_ctx)
    app.cleanup_ctx.append(retention_ctx)
    # Plugin resources start after the database and stop before it.
    for ctx in flatten(pm.hook.archnest_cleanup_ctx(app=app)):
        app.cleanup_ctx.append(ctx)
    # The timeline takes what the live state and the agents' reports record: up
    # before them, closed (flushed) after them.
    app.cleanup_ctx.append(timeline_ctx)
    app.cleanup_ctx.append(sources_ctx)
    app.cleanup_ctx.append(live_ctx)
    app.cleanup_ctx.append(stats_ctx)
    app.cleanup_ctx.append(alerts_ctx)
    setup_security_headers(app)
    setup_templates(app)
    pm.hook.archnest_routes(app=app)
    return app


async def end_streams(app: web.Application) -> None:
    await app[STREAMS_KEY].shutdown(STREAMS_SHUTDOWN_SECONDS)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    db = Database(settings.database_url)
    app[DB_KEY] = db
    if settings.auto_migrate:
        await migrate.upgrade(db.engine, app[PM_KEY])
    yield
    await db.dispose()


async def bootstrap_admin_ctx(app: web.Application) -> AsyncIterator[None]:
    """First run with no users: create ``admin`` (password from env, or printed once)."""
    settings, db = app[SETTINGS_KEY], app[DB_KEY]
    if settings.auto_migrate and await count_users(db) == 0:
        password = settings.admin_password
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        await create_user(db, "admin", password, role="admin")
        if generated:
            # Printed, never logged: logs get shipped to places passwords should not go.
            print(
                f"\n  First run: created user 'admin' with one-time password: {password}\n"
                "  Sign in and keep it safe; it is not shown again.\n",
                file=sys.stderr,
                flush=True,
            )
    yield


async def sources_ctx(app: web.Application) -> AsyncIterator[None]:
    sources: dict[str, HostSource] = app[SOURCES_KEY]
    # Called per implementation so each source remembers which plugin provides it.
    for impl in reversed(app[PM_KEY].hook.archnest_host_sources.get_hookimpls()):
        kwargs = {"app": app} if "app" in impl.argnames else {}
        provided = flatten([impl.function(**kwargs)])
        for source in provided:
            source.plugin_name = impl.plugin_name
            _add_source(sources, source)
    yield_sources = list(sources.values())
    started: list[HostSource] = []
    try:
        for source in yield_sources:
            await source.start()
            started.append(source)
        yield
    finally:
        for source in reversed(started):
            try:
                await source.close()
            except Exception:
                log.exception("closing source %s failed", source.name)


def _add_source(sources: dict[str, HostSource], source: HostSource) -> None:
    if source.name in sources:
        raise RuntimeError(f"two plugins provide the host source {source.name!r}")
    sources[source.name] = source


def configure_logging(level: str = "INFO") -> None:
    """Structured (key=value) log lines on stderr."""
    logging.basicConfig(
        level=level,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r",
        stream=sys.stderr,
    )


__all__ = ["configure_logging", "create_app"]
