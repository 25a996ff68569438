"""The agent's report, schema 1: validation model and normalisation.

The agent sends trimmed ``docker inspect`` documents plus a ``docker stats`` sample
(see docs/docker-agent-monitoring.md). Validation is a pydantic model parsed straight
from the request bytes (``model_validate_json``: no intermediate dict), unknown fields
are dropped, and everything the server keeps is re-shaped into api.md's normalised
container model here, once, at ingest — reads then only slice stored JSON.

Normalisation is hand-written over the validated objects rather than built from
pydantic output models because it runs for every container of every report on the
ingest hot path (see docs/performance.md, "Agent ingest").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from archnest import MASK, mask_env, normalise_state
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

SCHEMA_VERSION = 1
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$"
HOST_RE = re.compile(HOST_PATTERN)

Str = Annotated[str, StringConstraints(max_length=4096)]
ShortStr = Annotated[str, StringConstraints(max_length=512)]


class _Lenient(BaseModel):
    # Unknown fields are dropped, not rejected: a newer agent may send more, and
    # nothing we do not understand is ever stored.
    model_config = ConfigDict(extra="ignore")


class HealthDoc(_Lenient):
    Status: ShortStr | None = None
    FailingStreak: int | None = None


class StateDoc(_Lenient):
    Status: ShortStr = ""
    Running: bool = False
    Paused: bool = False
    Restarting: bool = False
    OOMKilled: bool = False
    Dead: bool = False
    Pid: int | None = None
    ExitCode: int | None = None
    Error: Str | None = None
    StartedAt: ShortStr | None = None
    FinishedAt: ShortStr | None = None
    Health: HealthDoc | None = None


class ConfigDoc(_Lenient):
    Image: Str | None = None
    Cmd: list[Str] | Str | None = None
    Entrypoint: list[Str] | Str | None = None
    Labels: dict[Str, Str] | None = None
    User: ShortStr | None = None
    Env: list[Annotated[str, StringConstraints(max_length=65536)]] | None = None


class RestartPolicyDoc(_Lenient):
    Name: ShortStr | None = None
    MaximumRetryCount: int | None = None


class HostConfigDoc(_Lenient):
    RestartPolicy: RestartPolicyDoc | None = None
    NetworkMode: ShortStr | None = None


class PortBinding(_Lenient):
    HostIp: ShortStr | None = None
    HostPort: ShortStr | None = None


class NetworkEntry(_Lenient):
    IPAddress: ShortStr | None = None
    MacAddress: ShortStr | None = None
    Gateway: ShortStr | None = None


class NetworkSettingsDoc(_Lenient):
    Ports: dict[ShortStr, list[PortBinding] | None] | None = None
    Networks: dict[ShortStr, NetworkEntry | None] | None = None


class MountEntry(_Lenient):
    Type: ShortStr | None = None
    Name: Str | None = None
    Source: Str | None = None
    Destination: Str = ""
    Mode: ShortStr | None = None
    RW: bool = True


class AgentContainer(_Lenient):
    Id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12,64}$")]
    Name: Annotated[str, StringConstraints(max_length=256)] = ""
    Created: ShortStr | None = None
    Image: ShortStr | None = None
    RestartCount: int | None = None
    # "Config" as a field name would collide with pydantic's class-based config hook.
    config: ConfigDoc = Field(default_factory=ConfigDoc, alias="Config")
    State: StateDoc = Field(default_factory=StateDoc)
    HostConfig: HostConfigDoc | None = None
    NetworkSettings: NetworkSettingsDoc | None = None
    Mounts: list[MountEntry] | None = None


class AgentStats(_Lenient):
    cpu_percent: float | None = None
    mem_usage_bytes: int | None = Field(default=None, ge=0)
    mem_limit_bytes: int | None = Field(default=None, ge=0)
    net_rx_bytes: int | None = Field(default=None, ge=0)
    net_tx_bytes: int | None = Field(default=None, ge=0)
    block_read_bytes: int | None = Field(default=None, ge=0)
    block_write_bytes: int | None = Field(default=None, ge=0)
    pids: int | None = Field(default=None, ge=0)


class AgentReport(_Lenient):
    """One snapshot as POSTed by ``agent/archnest-docker-agent.sh``."""

    schema_: Literal[1] = Field(alias="schema")
    agent_version: Annotated[str, StringConstraints(max_length=64)]
    host: Annotated[str, StringConstraints(pattern=HOST_PATTERN)]
    reported_at: datetime
    engine: dict[ShortStr, ShortStr | int | float | bool | None] = Field(default_factory=dict)
    host_facts: dict[ShortStr, ShortStr | int | float | bool | None] = Field(default_factory=dict)
    containers: list[AgentContainer] = Field(max_length=10000)
    stats: dict[ShortStr, AgentStats] = Field(default_factory=dict)


class ReportInvalid(ValueError):
    """The body is not JSON or not schema 1; ``str()`` is a message safe to return."""


def parse_report(body: bytes) -> AgentReport:
    """Validate raw request bytes as a schema-1 report, or raise :class:`ReportInvalid`."""
    try:
        return AgentReport.model_validate_json(body)
    except ValidationError as exc:
        raise ReportInvalid(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    # Only locations and pydantic's messages: the offending values are never echoed
    # back (they could be secrets from a broken agent).
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('msg', '')}"
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(body)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "report does not match schema 1: " + "; ".join(parts) + more


# --- normalisation -----------------------------------------------------------------

_ZERO_TIME = "0001-01-01"
_RFC3339_Z = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$")


def iso(value: str | None) -> str | None:
    """Docker's RFC 3339 (nanoseconds, 'Z') -> ISO 8601 UTC with microseconds.

    A string-only fast path for the usual UTC form; anything else goes through the
    generic parser. Docker's zero time means "never" and becomes None.
    """
    if not value or value.startswith(_ZERO_TIME):
        return None
    m = _RFC3339_Z.match(value)
    if m:
        frac = (m.group(2) or "")[:7].rstrip("0")
        return m.group(1) + (frac if len(frac) > 1 else "") + "Z"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


class EnvMasker:
    """Server-side masking with the core's ``mask_env`` (defence in depth), memoised.

    The same env lists come back in every report of a host, and masking runs for every
    container on the ingest hot path, so results are cached by the exact env tuple
    (bounded; cleared when full). The cached lists are only ever serialised, never
    mutated.
    """

    def __init__(self, max_entries: int = 20000):
        self.max_entries = max_entries
        self._cache: dict[tuple[str, ...], list[dict]] = {}

    def __call__(self, env: list[str] | None) -> list[dict]:
        if not env:
            return []
        key = tuple(env)
        hit = self._cache.get(key)
        if hit is None:
            hit = mask_env(key)
            for item in hit:  # the agent already masked it: say so
                if item["value"] == MASK:
                    item["masked"] = True
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = hit
        return hit


def _status_text(state: StateDoc) -> str:
    s = normalise_state(state.Status)
    if s == "running":
        health = state.Health.Status if state.Health else None
        return f"Up ({health})" if health and health != "none" else "Up"
    if s == "paused":
        return "Up (Paused)"
    if s == "exited":
        return f"Exited ({state.ExitCode or 0})"
    return s.capitalize()


def _ports(ports: dict[str, list[PortBinding] | None] | None) -> list[dict]:
    out: list[dict] = []
    for key, bindings in (ports or {}).items():
        private, _, proto = key.partition("/")
        if not private.isdigit():
            continue
        priv, proto = int(private), proto or "tcp"
        if not bindings:
            out.append({"private": priv, "public": None, "type": proto, "ip": None})
            continue
        for b in bindings:
            pub = b.HostPort
            out.append(
                {
                    "private": priv,
                    "public": int(pub) if pub and pub.isdigit() else None,
                    "type": proto,
                    "ip": b.HostIp or None,
                }
            )
    out.sort(key=lambda p: (p["private"], p["type"], p["public"] or 0))
    return out


def _as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def normalise_container(
    c: AgentContainer, host_id: str, stats: AgentStats | None, mask: EnvMasker
) -> dict[str, Any]:
    """One agent container -> api.md's normalised detail (a plain dict)."""
    cfg, state = c.config, c.State
    net = c.NetworkSettings
    cmd = _as_list(cfg.Entrypoint) + _as_list(cfg.Cmd)
    restart = c.HostConfig.RestartPolicy if c.HostConfig else None
    return {
        "id": c.Id,
        "name": c.Name.lstrip("/"),
        "image": cfg.Image or c.Image or "",
        "state": normalise_state(state.Status),
        "status": _status_text(state),
        "created": iso(c.Created),
        "ports": _ports(net.Ports if net else None),
        "labels": cfg.Labels or {},
        "host_id": host_id,
        "command": " ".join(cmd) or None,
        "started_at": iso(state.StartedAt),
        "finished_at": iso(state.FinishedAt),
        "exit_code": state.ExitCode,
        "restart_count": c.RestartCount,
        "health": state.Health.Status if state.Health else None,
        "networks": [
            {
                "name": name,
                "ip": (n.IPAddress or None) if n else None,
                "mac": (n.MacAddress or None) if n else None,
                "gateway": (n.Gateway or None) if n else None,
            }
            for name, n in ((net.Networks if net else None) or {}).items()
        ],
        "mounts": [
            {
                "type": m.Type,
                "source": m.Source or m.Name,
                "destination": m.Destination,
                "mode": m.Mode or None,
                "rw": m.RW,
            }
            for m in c.Mounts or ()
        ],
        "env": mask(cfg.Env),
        "stats": stats.model_dump() if stats is not None else None,
        "extra": {
            "image_id": c.Image,
            "user": cfg.User or None,
            "restart_policy": restart.Name if restart else None,
            "oom_killed": state.OOMKilled,
            "error": state.Error or None,
        },
    }


def normalise_report(
    report: AgentReport, host_id: str, mask: EnvMasker | None = None
) -> list[dict[str, Any]]:
    """Every container of a report, normalised, stats attached by full id."""
    mask = mask or EnvMasker()
    stats = report.stats
    return [normalise_container(c, host_id, stats.get(c.Id), mask) for c in report.containers]


SUMMARY_FIELDS = ("id", "name", "image", "state", "status", "created", "ports", "labels", "host_id")
# `docker ps` without -a lists these: paused and restarting containers are "up".
LISTED_BY_DEFAULT = frozenset({"running", "paused", "restarting"})


def summary(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: detail.get(k) for k in SUMMARY_FIELDS}


def find_container(containers: list[dict[str, Any]], ref: str) -> dict[str, Any] | None:
    """Docker's lookup order: exact id, exact name, then a unique id prefix."""
    for c in containers:
        if c["id"] == ref or c["name"] == ref:
            return c
    matches = [c for c in containers if c["id"].startswith(ref)]
    return matches[0] if len(matches) == 1 else None
