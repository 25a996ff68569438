"""Runtime settings, read once from the environment (api.md "Environment")."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .files import PRIVATE_FILE, make_private_dir, tighten

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _env_int(env: dict[str, str], name: str, default: int, lo: int | None = None) -> int:
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
    """Everything the app needs to start; tests build one directly."""

    data_dir: Path = field(default_factory=lambda: Path("./data"))
    database_url: str = ""
    secret_key: str = ""
    agent_token: str | None = None
    agent_stale_seconds: int = 180
    agent_max_report_bytes: int = 5 * 1024 * 1024
    plugins: list[str] | None = None
    admin_password: str | None = None
    host_timeout: float = 5.0
    auto_migrate: bool = True
    add_local_docker: bool = True
    secure_cookies: bool = False
    # Live streams (followed logs, terminals) open at once, per user and per host.
    max_follows_per_user: int = 20
    max_follows_per_host: int = 50
    max_terminals_per_user: int = 5
    max_terminals_per_host: int = 10
    # Hosts one fan-out request (the all-hosts list, the host index) reaches at once.
    fanout_concurrency: int = 32
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
    extra: dict[str, str] = field(default_factory=dict)

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
            agent_token=env.get("ARCHNEST_AGENT_TOKEN") or None,
            agent_stale_seconds=_env_int(env, "ARCHNEST_AGENT_STALE_SECONDS", 180),
            agent_max_report_bytes=_env_int(
                env, "ARCHNEST_AGENT_MAX_REPORT_BYTES", 5 * 1024 * 1024
            ),
            plugins=plugins,
            admin_password=env.get("ARCHNEST_ADMIN_PASSWORD") or None,
            host_timeout=float(env.get("ARCHNEST_HOST_TIMEOUT") or 5.0),
            add_local_docker=env.get("ARCHNEST_ADD_LOCAL_DOCKER", "1") not in ("0", "false"),
            secure_cookies=env.get("ARCHNEST_SECURE_COOKIES", "0") in ("1", "true"),
            max_follows_per_user=_env_int(env, "ARCHNEST_MAX_FOLLOWS_PER_USER", 20, lo=1),
            max_follows_per_host=_env_int(env, "ARCHNEST_MAX_FOLLOWS_PER_HOST", 50, lo=1),
            max_terminals_per_user=_env_int(env, "ARCHNEST_MAX_TERMINALS_PER_USER", 5, lo=1),
            max_terminals_per_host=_env_int(env, "ARCHNEST_MAX_TERMINALS_PER_HOST", 10, lo=1),
            fanout_concurrency=_env_int(env, "ARCHNEST_FANOUT_CONCURRENCY", 32, lo=1),
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
            extra={k: v for k, v in env.items() if k.startswith("ARCHNEST_")},
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
