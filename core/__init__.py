"""ArchNest Containers: the platform core and its public API for plugins.

Plugins import only from here (``from archnest import hookimpl, HostSource, ...``) and
from :mod:`archnest.ssh`. ``__all__`` is exactly the "Public API reference" of
docs/plugin-authors.md (tests/plugins/test_public_api.py keeps the two equal); every
other submodule is internal, and import-linter keeps plugins out of them.
"""

from __future__ import annotations

from .app import create_app, tune_interpreter
from .audit import audit_event
from .auth import admin_only, current_user, public, websocket
from .bodies import read_body_limited, read_model, require_json
from .container_routes import add_container_routes
from .containers import (
    REF_PATTERN,
    ContainerDetail,
    ContainerSummary,
    EnvVar,
    LogLine,
    Mount,
    Network,
    Port,
    RowId,
    Stats,
    iso_utc,
    parse_row_id,
    validate_action,
    validate_ref,
)
from .db import Database, utcnow
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    FeatureDisabled,
    Forbidden,
    HostError,
    HostTimeout,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
)
from .exec_bridge import make_exec_handler
from .keys import DB_KEY, PM_KEY, SECRETS_KEY, SETTINGS_KEY, SOURCES_KEY
from .live import publish_containers
from .normalise import (
    LogLineSplitter,
    detail_dict_from_inspect,
    detail_from_inspect,
    log_line_from_engine,
    normalise_state,
    ports_from_inspect,
    stats_between,
    stats_from_engine,
    summary_from_engine_list,
)
from .openapi import Content, Param, operation
from .plugin_config import PluginSettings, env_setting, plugin_settings
from .plugin_types import Assets, MigrationLineage, NavItem, Panel
from .plugins import hookimpl
from .resolve import source_resolver, with_timeout
from .secrets import MASK, SecretBox, is_secret_name, mask_env
from .settings import Settings
from .sources import Capabilities, ExecSession, HostInfo, HostSource, LogOptions, NotSupported
from .stats_collector import record_stats

__version__ = "0.1.0"

__all__ = [
    "DB_KEY",
    "MASK",
    "PM_KEY",
    "REF_PATTERN",
    "SECRETS_KEY",
    "SETTINGS_KEY",
    "SOURCES_KEY",
    "ApiError",
    "Assets",
    "BadRequest",
    "Capabilities",
    "Conflict",
    "ContainerDetail",
    "ContainerSummary",
    "Content",
    "Database",
    "EnvVar",
    "ExecSession",
    "FeatureDisabled",
    "Forbidden",
    "HostError",
    "HostInfo",
    "HostSource",
    "HostTimeout",
    "LogLine",
    "LogLineSplitter",
    "LogOptions",
    "MigrationLineage",
    "Mount",
    "NavItem",
    "Network",
    "NotFound",
    "NotSupported",
    "Panel",
    "Param",
    "PayloadTooLarge",
    "PluginSettings",
    "Port",
    "RowId",
    "SecretBox",
    "Settings",
    "Stats",
    "TooManyRequests",
    "Unauthorized",
    "add_container_routes",
    "admin_only",
    "audit_event",
    "create_app",
    "current_user",
    "detail_dict_from_inspect",
    "detail_from_inspect",
    "env_setting",
    "hookimpl",
    "is_secret_name",
    "iso_utc",
    "log_line_from_engine",
    "make_exec_handler",
    "mask_env",
    "normalise_state",
    "operation",
    "parse_row_id",
    "plugin_settings",
    "ports_from_inspect",
    "public",
    "publish_containers",
    "read_body_limited",
    "read_model",
    "record_stats",
    "require_json",
    "source_resolver",
    "stats_between",
    "stats_from_engine",
    "summary_from_engine_list",
    "tune_interpreter",
    "utcnow",
    "validate_action",
    "validate_ref",
    "websocket",
    "with_timeout",
]
