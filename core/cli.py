"""The ``archnest`` command: serve, db, user, token, audit, plugins."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import migrate
from .app import configure_logging, create_app, tune_interpreter
from .client_address import access_logger_class
from .db import Database
from .errors import ApiError
from .plugins import build_plugin_manager, loaded_plugins
from .settings import Settings
from .users import create_token, create_user


def _with_db(fn: Callable[[Database, Settings], Awaitable[Any]]) -> Any:
    settings = Settings.from_env()
    settings.prepare_data_dir()

    async def run() -> Any:
        db = Database(settings.database_url)
        try:
            return await fn(db, settings)
        finally:
            await db.dispose()

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    settings = Settings.from_env()
    settings.auto_migrate = not args.no_migrate
    app = create_app(settings)
    tune_interpreter()
    print(f"ArchNest Containers on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        # After the app's own shutdown step has ended the streams (app.py), handlers
        # still running get this long before they are cancelled: SIGTERM to exit stays
        # within 10 s whatever is in flight.
        shutdown_timeout=2.0,
        access_log=logging.getLogger("archnest.access"),
        # remote= is the client address (X-Forwarded-For from ARCHNEST_TRUSTED_PROXIES
        # only), the same address login throttling uses.
        access_log_class=access_logger_class(settings.trusted_proxies),
    )
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    pm = build_plugin_manager(Settings.from_env().plugins)

    async def run(db: Database, _settings: Settings) -> Any:
        if args.action == "upgrade":
            await migrate.upgrade(db.engine, pm)
        return await migrate.current(db.engine, pm)

    state = _with_db(run)
    for name, info in state.items():
        cur = ",".join(info["current"]) or "(none)"
        head = ",".join(info["head"]) or "(none)"
        mark = "" if info["current"] == info["head"] else "  (behind)"
        print(f"{name:20s} current={cur} head={head}{mark}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat: "):
            print("passwords differ", file=sys.stderr)
            return 2
    pm = build_plugin_manager(Settings.from_env().plugins)

    async def run(db: Database, _settings: Settings) -> None:
        await migrate.upgrade(db.engine, pm)
        await create_user(db, args.name, password, "admin" if args.admin else "viewer")

    _with_db(run)
    print(f"user {args.name!r} created ({'admin' if args.admin else 'viewer'})")
    return 0


def _days(value: str) -> int:
    # The same bound as POST /api/tokens: a year count a typo cannot overflow.
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 3650:
        raise argparse.ArgumentTypeError("a whole number of days from 1 to 3650")
    return int(value)


def cmd_token_create(args: argparse.Namespace) -> int:
    token = _with_db(
        lambda db, _s: create_token(db, args.user, args.name or "", args.expires_in_days)
    )
    print(token)
    print("Shown once; store it now.", file=sys.stderr)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError

    from .audit_chain import verify

    try:
        verdict = _with_db(lambda db, _s: verify(db))
    except DBAPIError as exc:  # no audit tables yet: never migrated to core_0005
        print(
            f"cannot read the audit log ({type(exc.orig).__name__}); run `archnest db upgrade`",
            file=sys.stderr,
        )
        return 2
    if verdict.ok:
        print(f"audit chain intact: {verdict.rows} rows")
        return 0
    print(f"audit chain broken at row {verdict.bad_id}: {verdict.reason}", file=sys.stderr)
    print(f"bad row: {verdict.bad_id}")
    return 1


def cmd_plugins(args: argparse.Namespace) -> int:
    pm = build_plugin_manager(Settings.from_env().plugins)
    rows = [p for p in loaded_plugins(pm) if not p.core]
    if args.json:
        print(json.dumps([p.__dict__ for p in rows], indent=2))
        return 0
    for p in rows:
        print(f"{p.name:20s} {p.version or '-':10s} {p.module}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archnest", description="ArchNest Containers")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web app (migrates first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--no-migrate", action="store_true")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "current"])
    db.set_defaults(func=cmd_db)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    add.add_argument("--password-stdin", action="store_true")
    add.set_defaults(func=cmd_user_add)

    token = sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a bearer token for USER")
    create.add_argument("user")
    create.add_argument("--name", default="")
    create.add_argument(
        "--expires-in-days", type=_days, default=None, help="1-3650; default: never expires"
    )
    create.set_defaults(func=cmd_token_create)

    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="check the hash chain: exit 0 intact, 1 naming the first bad row"
    )
    verify.set_defaults(func=cmd_audit_verify)

    plugins = sub.add_parser("plugins", help="list loaded plugins")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=cmd_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
