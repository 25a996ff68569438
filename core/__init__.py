"""ArchNest Containers: the platform core and its public API for plugins.

Plugins import only from here (``from archnest import hookimpl, HostSource, ...``).
"""

from __future__ import annotations

from .app import create_app
from .auth import (
    current_user,
    public,
    read_body_limited,
    require_json,
    required_role,
    same_origin,
    websocket,
)
from .containers import (
    ACTIONS,
    REF_PATTERN,
    ContainerDetail,
    ContainerSummary,
    EnvVar,
    LogLine,
    Mount,
    Network,
    Port,
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
    Unauthorized,
)
from .container_routes import add_container_routes
from .exec_bridge import make_exec_handler
from .resolve import source_resolver, with_timeout
from .keys import DB_KEY, PM_KEY, SECRETS_KEY, SETTINGS_KEY, SOURCES_KEY
from .normalise import (
    detail_dict_from_inspect,
    detail_from_inspect,
    normalise_state,
    ports_from_inspect,
    stats_from_engine,
    summary_from_engine_list,
)
from .plugin_settings import PluginSettings, env_setting, plugin_settings
from .plugin_types import Assets, MigrationLineage, NavItem, Panel
from .plugins import hookimpl
from .secrets import MASK, SecretBox, is_secret_name, mask_env
from .settings import Settings
from .sources import Capabilities, ExecSession, HostInfo, HostSource, LogOptions, NotSupported
from .ssh import (
    SSH_POOL_KEY,
    HostKeyNotTrusted,
    PooledProcess,
    SshPool,
    SshResult,
    SshUnreachable,
)
from .ssh.targets import list_targets as list_ssh_targets

__version__ = "0.1.0"

__all__ = [
    "ACTIONS",
    "DB_KEY",
    "MASK",
    "PM_KEY",
    "REF_PATTERN",
    "SECRETS_KEY",
    "SETTINGS_KEY",
    "SOURCES_KEY",
    "SSH_POOL_KEY",
    "ApiError",
    "Assets",
    "BadRequest",
    "Capabilities",
    "Conflict",
    "ContainerDetail",
    "ContainerSummary",
    "Database",
    "EnvVar",
    "ExecSession",
    "FeatureDisabled",
    "Forbidden",
    "HostError",
    "HostInfo",
    "HostKeyNotTrusted",
    "HostSource",
    "HostTimeout",
    "LogLine",
    "LogOptions",
    "MigrationLineage",
    "Mount",
    "NavItem",
    "Network",
    "NotFound",
    "NotSupported",
    "Panel",
    "PayloadTooLarge",
    "PluginSettings",
    "PooledProcess",
    "Port",
    "SecretBox",
    "Settings",
    "SshPool",
    "SshResult",
    "SshUnreachable",
    "Stats",
    "Unauthorized",
    "add_container_routes",
    "create_app",
    "current_user",
    "detail_dict_from_inspect",
    "detail_from_inspect",
    "env_setting",
    "hookimpl",
    "is_secret_name",
    "iso_utc",
    "list_ssh_targets",
    "make_exec_handler",
    "mask_env",
    "normalise_state",
    "parse_row_id",
    "plugin_settings",
    "ports_from_inspect",
    "public",
    "read_body_limited",
    "require_json",
    "required_role",
    "same_origin",
    "source_resolver",
    "stats_from_engine",
    "summary_from_engine_list",
    "utcnow",
    "validate_action",
    "validate_ref",
    "websocket",
    "with_timeout",
]
