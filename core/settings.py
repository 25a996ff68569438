"""Runtime settings, read once from the environment (every variable: docs/configuration.md)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .files import PRIVATE_FILE, make_private_dir, tighten

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_D = TypeVar("_D", float, None)


def _env_int(env: Mapping[str, str], name: str, default: int, lo: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc
    if lo is not None and value < lo:
        raise SystemExit(f"{name} must be at least {lo}, got {value}")
    return value


def _env_float(
    env: Mapping[str, str], name: str, default: _D, lo: float | None = None
) -> float | _D:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc
    if value != value or value in (float("inf"), float("-inf")):  # nan, inf
        raise SystemExit(f"{name} must be a finite number, got {raw!r}")
    if lo is not None and value < lo:
        raise SystemExit(f"{name} must be at least {lo:g}, got {value:g}")
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SystemExit(f"{name} must be one of 1/true/yes/on or 0/false/no/off, got {raw!r}")


def parse_names(raw: str) -> tuple[str, ...]:
    """A comma list of names (groups), blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """A comma list of addresses or CIDRs (``10.0.0.1, 192.168.0.0/16, fd00::/8``)."""
    networks = []
    for item in raw.split(","):
        item = item.strip()
        if item:
            # strict=False: "10.1.2.3/8" means the /8 it is in, as proxies read it.
            networks.append(ipaddress.ip_network(item, strict=False))
    return tuple(networks)


def _env_networks(env: dict[str, str], name: str) -> tuple[IPNetwork, ...]:
    raw = env.get(name) or ""
    try:
        return parse_networks(raw)
    except ValueError as exc:
        raise SystemExit(
            f"{name} must be a comma list of IP addresses or CIDRs, got {raw!r}: {exc}"
        ) from exc


@dataclass
class Settings:
    """Everything the core needs to start; tests build one directly.

    Plugins own their settings (``archnest.PluginSettings``): they are read from
    ``plugin_env`` while the app is built, which ``from_env`` fills with the process's
    ``ARCHNEST_*`` variables. Give them without the process environment by passing
    ``plugin_env`` yourself (``Settings(plugin_env={"ARCHNEST_AGENT_TOKEN": "..."})``).
    """

    data_dir: Path = field(default_factory=lambda: Path("./data"))
    database_url: str = ""
    secret_key: str = ""
    plugins: list[str] | None = None
    admin_password: str | None = None
    host_timeout: float = 5.0
    auto_migrate: bool = True
    secure_cookies: bool = False
    # Live streams (followed logs, terminals) open at once, per user and per host.
    max_follows_per_user: int = 20
    max_follows_per_host: int = 50
    max_terminals_per_user: int = 5
    max_terminals_per_host: int = 10
    # Hosts one fan-out request (the all-hosts list, the host index) reaches at once.
    fanout_concurrency: int = 32
    # The live state: watch hosts' event streams and serve lists from the cache; list
    # every watched host again this often anyway; look for added/removed hosts and
    # status changes of unwatched ones (agents) this often.
    live: bool = True
    live_resync_seconds: float = 60.0
    live_sweep_seconds: float = 5.0
    # Stats history (core/stats_collector.py): one sample per running container of the
    # docker and ssh hosts this often (seconds); agent reports' samples at most as often.
    stats_interval: float = 30.0
    # Alerting (docs/alerts.md): rules are evaluated this often (seconds).
    alerts_interval: float = 15.0
    # Whose X-Forwarded-For is believed for the client address (empty: nobody's).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Login throttling: a burst of attempts, then one more per interval (seconds), per
    # (username, client address) and per client address; password checks one client
    # address may have running at once; argon2 worker threads and waiting checks.
    login_attempts: int = 5
    login_attempt_seconds: int = 30
    login_address_attempts: int = 20
    login_address_attempt_seconds: int = 5
    login_address_concurrency: int = 1
    password_hash_workers: int = 2
    password_hash_queue: int = 8
    # The core SSH transport's pool: seconds to open one hop (None: 0.8 x host_timeout,
    # at least 1, so an unreachable host reports why before the request times out), the
    # default limit of one short command, keepalive interval, idle close; channels per
    # target and how many of them short commands may use at once.
    ssh_connect_timeout: float | None = None
    ssh_command_timeout: float = 30.0
    ssh_keepalive: float = 15.0
    ssh_idle_seconds: float = 300.0
    ssh_max_commands: int = 4
    ssh_max_channels: int = 10
    # Audit rows older than this many days are removed from the start of the chain
    # (0: kept forever).
    audit_retention_days: int = 365
    # Terminal recordings (docs/recordings.md): on/off, keystrokes too (off: they may be
    # passwords), the size at which one stops, removed after this many days (0: never).
    recordings: bool = True
    record_input: bool = False
    recording_max_bytes: int = 50_000_000
    recording_retention_days: int = 90
    # Container timeline entries (start, die, ...) are kept this many days (0: forever).
    timeline_retention_days: int = 90
    # GET /metrics without credentials (docs/metrics.md: only on a trusted network).
    metrics_public: bool = False
    # Single sign-on (docs/sso.md). OpenID Connect is on when an issuer is set; the
    # groups claim (or the Remote-Groups header) decides the role: a member of an admin
    # group is an admin, of a viewer group a viewer, of neither is refused.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    oidc_name: str = "single sign-on"
    oidc_scopes: str = "openid profile email groups"
    oidc_groups_claim: str = "groups"
    oidc_admin_groups: tuple[str, ...] = ()
    oidc_viewer_groups: tuple[str, ...] = ()
    # Off: the password form and POST /api/auth/login refuse (API tokens still work).
    password_login: bool = True
    # Remote-User / Remote-Groups from a peer in trusted_proxies sign the request in.
    trusted_header_auth: bool = False
    # The ARCHNEST_* values each plugin's typed settings are parsed from (strings, as in
    # the environment); plugins never read this directly.
    plugin_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{(self.data_dir / 'archnest.db').resolve()}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("ARCHNEST_DATA_DIR") or "./data")
        plugins_raw = env.get("ARCHNEST_PLUGINS")
        plugins = (
            [p.strip() for p in plugins_raw.split(",") if p.strip()]
            if plugins_raw is not None and plugins_raw.strip() != ""
            else None
        )
        return cls(
            data_dir=data_dir,
            database_url=env.get("ARCHNEST_DATABASE_URL", ""),
            secret_key=env.get("ARCHNEST_SECRET_KEY", ""),
            plugins=plugins,
            admin_password=env.get("ARCHNEST_ADMIN_PASSWORD") or None,
            host_timeout=float(env.get("ARCHNEST_HOST_TIMEOUT") or 5.0),
            secure_cookies=env.get("ARCHNEST_SECURE_COOKIES", "0") in ("1", "true"),
            max_follows_per_user=_env_int(env, "ARCHNEST_MAX_FOLLOWS_PER_USER", 20, lo=1),
            max_follows_per_host=_env_int(env, "ARCHNEST_MAX_FOLLOWS_PER_HOST", 50, lo=1),
            max_terminals_per_user=_env_int(env, "ARCHNEST_MAX_TERMINALS_PER_USER", 5, lo=1),
            max_terminals_per_host=_env_int(env, "ARCHNEST_MAX_TERMINALS_PER_HOST", 10, lo=1),
            fanout_concurrency=_env_int(env, "ARCHNEST_FANOUT_CONCURRENCY", 32, lo=1),
            live=env.get("ARCHNEST_LIVE", "1") not in ("0", "false"),
            live_resync_seconds=_env_float(env, "ARCHNEST_LIVE_RESYNC_SECONDS", 60.0, lo=1.0),
            live_sweep_seconds=_env_float(env, "ARCHNEST_LIVE_SWEEP_SECONDS", 5.0, lo=0.5),
            stats_interval=_env_float(env, "ARCHNEST_STATS_INTERVAL", 30.0, lo=1.0),
            alerts_interval=_env_float(env, "ARCHNEST_ALERTS_INTERVAL", 15.0, lo=1.0),
            trusted_proxies=_env_networks(env, "ARCHNEST_TRUSTED_PROXIES"),
            login_attempts=_env_int(env, "ARCHNEST_LOGIN_ATTEMPTS", 5, lo=1),
            login_attempt_seconds=_env_int(env, "ARCHNEST_LOGIN_ATTEMPT_SECONDS", 30, lo=1),
            login_address_attempts=_env_int(env, "ARCHNEST_LOGIN_ADDRESS_ATTEMPTS", 20, lo=1),
            login_address_attempt_seconds=_env_int(
                env, "ARCHNEST_LOGIN_ADDRESS_ATTEMPT_SECONDS", 5, lo=1
            ),
            login_address_concurrency=_env_int(env, "ARCHNEST_LOGIN_ADDRESS_CONCURRENCY", 1, lo=1),
            password_hash_workers=_env_int(env, "ARCHNEST_PASSWORD_HASH_WORKERS", 2, lo=1),
            password_hash_queue=_env_int(env, "ARCHNEST_PASSWORD_HASH_QUEUE", 8, lo=0),
            ssh_connect_timeout=_env_float(env, "ARCHNEST_SSH_CONNECT_TIMEOUT", None, lo=0.1),
            ssh_command_timeout=_env_float(env, "ARCHNEST_SSH_COMMAND_TIMEOUT", 30.0, lo=0.1),
            ssh_keepalive=_env_float(env, "ARCHNEST_SSH_KEEPALIVE", 15.0, lo=0),
            ssh_idle_seconds=_env_float(env, "ARCHNEST_SSH_IDLE_SECONDS", 300.0, lo=0.1),
            ssh_max_commands=_env_int(env, "ARCHNEST_SSH_MAX_COMMANDS", 4, lo=1),
            ssh_max_channels=_env_int(env, "ARCHNEST_SSH_MAX_CHANNELS", 10, lo=1),
            audit_retention_days=_env_int(env, "ARCHNEST_AUDIT_RETENTION_DAYS", 365, lo=0),
            recordings=_env_bool(env, "ARCHNEST_RECORDINGS", True),
            record_input=_env_bool(env, "ARCHNEST_RECORD_INPUT", False),
            recording_max_bytes=_env_int(env, "ARCHNEST_RECORDING_MAX_BYTES", 50_000_000, lo=1024),
            recording_retention_days=_env_int(env, "ARCHNEST_RECORDING_RETENTION_DAYS", 90, lo=0),
            timeline_retention_days=_env_int(env, "ARCHNEST_TIMELINE_RETENTION_DAYS", 90, lo=0),
            metrics_public=_env_bool(env, "ARCHNEST_METRICS_PUBLIC", False),
            oidc_issuer=(env.get("ARCHNEST_OIDC_ISSUER") or "").strip().rstrip("/"),
            oidc_client_id=(env.get("ARCHNEST_OIDC_CLIENT_ID") or "").strip(),
            oidc_client_secret=env.get("ARCHNEST_OIDC_CLIENT_SECRET") or "",
            oidc_name=(env.get("ARCHNEST_OIDC_NAME") or "").strip() or "single sign-on",
            oidc_scopes=(env.get("ARCHNEST_OIDC_SCOPES") or "").strip()
            or "openid profile email groups",
            oidc_groups_claim=(env.get("ARCHNEST_OIDC_GROUPS_CLAIM") or "").strip() or "groups",
            oidc_admin_groups=parse_names(env.get("ARCHNEST_OIDC_ADMIN_GROUPS") or ""),
            oidc_viewer_groups=parse_names(env.get("ARCHNEST_OIDC_VIEWER_GROUPS") or ""),
            password_login=_env_bool(env, "ARCHNEST_PASSWORD_LOGIN", True),
            trusted_header_auth=_env_bool(env, "ARCHNEST_TRUSTED_HEADER_AUTH", False),
            plugin_env={k: v for k, v in env.items() if k.startswith("ARCHNEST_")},
        )

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    def check_sso(self) -> None:
        """SystemExit naming what is missing from a half-configured sign-on."""
        if self.oidc_issuer and not self.oidc_client_id:
            raise SystemExit("ARCHNEST_OIDC_ISSUER is set: ARCHNEST_OIDC_CLIENT_ID is required")
        if self.oidc_issuer and not self.oidc_issuer.startswith(("https://", "http://")):
            raise SystemExit(
                f"ARCHNEST_OIDC_ISSUER must be an http(s) URL, got {self.oidc_issuer!r}"
            )
        if self.trusted_header_auth and not self.trusted_proxies:
            raise SystemExit(
                "ARCHNEST_TRUSTED_HEADER_AUTH=1 needs ARCHNEST_TRUSTED_PROXIES: the headers "
                "are believed only from those addresses"
            )
        sso = self.oidc_issuer or self.trusted_header_auth
        if sso and not (self.oidc_admin_groups or self.oidc_viewer_groups):
            raise SystemExit(
                "single sign-on is on: set ARCHNEST_OIDC_ADMIN_GROUPS and/or "
                "ARCHNEST_OIDC_VIEWER_GROUPS (nobody could sign in otherwise)"
            )

    def prepare_data_dir(self) -> Path:
        """Create the data dir with mode 0700, or tighten a looser one (with a warning)."""
        make_private_dir(self.data_dir)
        return self.data_dir

    def ensure_secret_key(self) -> str:
        """Return the secret key, generating one into the data dir (mode 0600) if unset."""
        if self.secret_key:
            return self.secret_key
        self.prepare_data_dir()
        path = self.data_dir / "secret.key"
        if path.exists():
            tighten(path, PRIVATE_FILE)
            self.secret_key = path.read_text().strip()
            return self.secret_key
        key = secrets.token_urlsafe(48)
        # O_EXCL + 0600: never world-readable, never overwrite a key written concurrently.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        except FileExistsError:
            tighten(path, PRIVATE_FILE)
            self.secret_key = path.read_text().strip()
            return self.secret_key
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        self.secret_key = key
        return key
