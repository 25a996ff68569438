"""The normalised container models of api.md, shared by every source."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from .errors import BadRequest, NotFound

State = Literal["running", "paused", "exited", "created", "restarting", "dead", "removing"]
STATES: tuple[str, ...] = ("running", "paused", "exited", "created", "restarting", "dead")

# api.md: a container id (hex, 12-64) or a name. Anything else is refused before any host
# is contacted; the SSH source additionally single-quotes what passes.
REF_PATTERN = re.compile(r"^(?:[0-9a-f]{12,64}|[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$")
ACTIONS: tuple[str, ...] = ("start", "stop", "restart", "pause", "unpause", "kill", "remove")


def validate_ref(ref: str) -> str:
    """Return ``ref`` if it is a valid container id or name, else raise 400."""
    if not isinstance(ref, str) or not REF_PATTERN.fullmatch(ref):
        raise BadRequest("invalid container reference", code="invalid_ref")
    return ref


MAX_ROW_ID = 2**31 - 1  # the largest id an INTEGER primary key holds on PostgreSQL


def parse_row_id(raw: str, what: str, code: str = "unknown_host") -> int:
    """A database id from a path or query, or 404 (never a 500 on odd input).

    ``str.isdigit`` alone accepts "²" (which ``int`` refuses), and ids too large for the
    column make PostgreSQL fail the query: both are simply unknown.
    """
    if raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= MAX_ROW_ID:
        return int(raw)
    raise NotFound(f"unknown {what} {raw[:64]!r}", code=code)


def validate_action(action: str) -> str:
    if action not in ACTIONS:
        raise BadRequest(
            f"unknown action; expected one of: {', '.join(ACTIONS)}", code="invalid_action"
        )
    return action


def normalise_state(raw: str | None) -> str:
    """Map engine/CLI state strings (any case, 20.10 or current) to api.md's states."""
    value = (raw or "").strip().lower()
    if value in STATES or value == "removing":
        return value
    if value.startswith("up") and "paused" in value:
        return "paused"
    if value.startswith("up"):
        return "running"
    if value.startswith("exited"):
        return "exited"
    if value.startswith("restarting"):
        return "restarting"
    return value or "unknown"


@functools.lru_cache(maxsize=4096)
def _iso_from_unix(value: float) -> str:
    # Every listing renders the same creation times again (one per container per host).
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def iso_utc(value: Any) -> str | None:
    """Render a timestamp (unix seconds, datetime, or Docker's RFC 3339) as ISO 8601 UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return _iso_from_unix(value) if value > 0 else None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    text = str(value).strip()
    if text.startswith("0001-01-01"):
        return None  # Docker's zero time: "never"
    # Docker gives nanoseconds; Python parses at most microseconds.
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text)
    if m:
        frac = (m.group(2) or "")[:7]
        tz = m.group(3) or "Z"
        tz = "+00:00" if tz == "Z" else tz
        try:
            parsed = datetime.fromisoformat(m.group(1) + frac + tz)
        except ValueError:
            return text
        return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
    # CLI format: "2024-01-02 03:04:05 +0000 UTC"
    m = re.match(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ([+-]\d{4})", text)
    if m:
        stamp = f"{m.group(1)} {m.group(2)} {m.group(3)}"
        parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S %z")
        return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


class Port(BaseModel):
    private: int
    public: int | None = None
    type: str = "tcp"
    ip: str | None = None


class Network(BaseModel):
    name: str
    ip: str | None = None
    mac: str | None = None
    gateway: str | None = None


class Mount(BaseModel):
    type: str | None = None
    source: str | None = None
    destination: str
    mode: str | None = None
    rw: bool = True


class EnvVar(BaseModel):
    name: str
    value: str
    masked: bool = False


class Stats(BaseModel):
    cpu_percent: float | None = None
    mem_usage_bytes: int | None = None
    mem_limit_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    block_read_bytes: int | None = None
    block_write_bytes: int | None = None
    pids: int | None = None


class ContainerSummary(BaseModel):
    """One row of a container list (api.md "Normalised container (list)")."""

    id: str
    name: str
    image: str
    state: str
    status: str = ""
    created: str | None = None
    ports: list[Port] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    host_id: str = ""


class ContainerDetail(ContainerSummary):
    """The detail view; ``stats`` is None when the source has no sample."""

    command: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int | None = None
    health: str | None = None
    networks: list[Network] = Field(default_factory=list)
    mounts: list[Mount] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    stats: Stats | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class LogLine(BaseModel):
    stream: Literal["stdout", "stderr"] = "stdout"
    text: str
    ts: str | None = None


def summary_from_engine_list(item: dict[str, Any], host_id: str) -> ContainerSummary:
    """One Engine API ``GET /containers/json`` entry -> the normalised list row.

    Shared by every source that reads the Engine API (over TCP/unix or over SSH).
    """
    names = item.get("Names") or []
    ports = [
        Port(
            private=p["PrivatePort"],
            public=p.get("PublicPort"),
            type=p.get("Type") or "tcp",
            ip=p.get("IP") or None,
        )
        for p in item.get("Ports") or []
        if "PrivatePort" in p
    ]
    return ContainerSummary(
        id=item.get("Id", ""),
        name=(names[0] if names else "").lstrip("/"),
        image=item.get("Image", ""),
        state=normalise_state(item.get("State") or item.get("Status")),
        status=item.get("Status") or "",
        created=iso_utc(item.get("Created")),
        ports=sorted(ports, key=lambda p: (p.private, p.type, p.public or 0)),
        labels=item.get("Labels") or {},
        host_id=host_id,
    )


def cpu_percent_from_engine_stats(stats: dict) -> float | None:
    """CPU % exactly as ``docker stats`` computes it (delta of usage over delta of system)."""
    try:
        cpu = stats["cpu_stats"]
        pre = stats.get("precpu_stats") or {}
        cpu_delta = cpu["cpu_usage"]["total_usage"] - (pre.get("cpu_usage") or {}).get(
            "total_usage", 0
        )
        sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
    except (KeyError, TypeError):
        return None
    if sys_delta > 0 and cpu_delta >= 0:
        return round(cpu_delta / sys_delta * online * 100.0, 2)
    return 0.0


def stats_from_engine(stats: dict | None) -> Stats | None:
    """Normalise an Engine API ``/containers/{id}/stats?stream=false`` document."""
    if not stats:
        return None
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    # docker stats subtracts the page cache (cgroup v2 "inactive_file", v1 "total_inactive_file").
    inner = mem.get("stats") or {}
    cache = inner.get("inactive_file", inner.get("total_inactive_file", 0)) or 0
    if usage is not None and cache and cache < usage:
        usage -= cache
    rx = tx = 0
    for net in (stats.get("networks") or {}).values():
        rx += net.get("rx_bytes", 0)
        tx += net.get("tx_bytes", 0)
    read = write = 0
    for entry in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    return Stats(
        cpu_percent=cpu_percent_from_engine_stats(stats),
        mem_usage_bytes=usage,
        mem_limit_bytes=mem.get("limit"),
        net_rx_bytes=rx if stats.get("networks") is not None else None,
        net_tx_bytes=tx if stats.get("networks") is not None else None,
        block_read_bytes=read,
        block_write_bytes=write,
        pids=(stats.get("pids_stats") or {}).get("current"),
    )


def ports_from_inspect(port_map: dict | None) -> list[Port]:
    """Engine/CLI inspect ``NetworkSettings.Ports`` -> normalised ports."""
    out: list[Port] = []
    for key, bindings in (port_map or {}).items():
        private, _, proto = key.partition("/")
        try:
            priv = int(private)
        except ValueError:
            continue
        if not bindings:
            out.append(Port(private=priv, type=proto or "tcp"))
            continue
        for b in bindings:
            host_port = b.get("HostPort")
            out.append(
                Port(
                    private=priv,
                    public=int(host_port) if host_port else None,
                    type=proto or "tcp",
                    ip=b.get("HostIp") or None,
                )
            )
    return sorted(out, key=lambda p: (p.private, p.type, p.public or 0))


def detail_from_inspect(data: dict, host_id: str, stats: Stats | None = None) -> ContainerDetail:
    """Normalise a ``docker inspect`` document (Engine API and CLI give the same JSON)."""
    from .secrets import mask_env  # local: secrets imports nothing from here

    cfg = data.get("Config") or {}
    state = data.get("State") or {}
    net = data.get("NetworkSettings") or {}
    health = (state.get("Health") or {}).get("Status")
    cmd = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
    networks = [
        Network(
            name=name,
            ip=(n or {}).get("IPAddress") or None,
            mac=(n or {}).get("MacAddress") or None,
            gateway=(n or {}).get("Gateway") or None,
        )
        for name, n in (net.get("Networks") or {}).items()
    ]
    mounts = [
        Mount(
            type=m.get("Type"),
            source=m.get("Source") or m.get("Name"),
            destination=m.get("Destination", ""),
            mode=m.get("Mode") or None,
            rw=bool(m.get("RW", True)),
        )
        for m in data.get("Mounts") or []
    ]
    status_word = normalise_state(state.get("Status"))
    return ContainerDetail(
        id=data.get("Id", ""),
        name=(data.get("Name") or "").lstrip("/"),
        image=cfg.get("Image") or data.get("Image", ""),
        state=status_word,
        status=_status_text(state),
        created=iso_utc(data.get("Created")),
        ports=ports_from_inspect(net.get("Ports")),
        labels=cfg.get("Labels") or {},
        host_id=host_id,
        command=" ".join(str(c) for c in cmd) or None,
        started_at=iso_utc(state.get("StartedAt")),
        finished_at=iso_utc(state.get("FinishedAt")),
        exit_code=state.get("ExitCode"),
        restart_count=data.get("RestartCount"),
        health=health,
        networks=networks,
        mounts=mounts,
        env=[EnvVar(**e) for e in mask_env(cfg.get("Env") or [])],
        stats=stats,
    )


def _status_text(state: dict) -> str:
    """A short human status like the CLI's ("Up", "Exited (0)", "Paused")."""
    s = normalise_state(state.get("Status"))
    if s == "running":
        return "Up"
    if s == "paused":
        return "Up (Paused)"
    if s == "exited":
        return f"Exited ({state.get('ExitCode', 0)})"
    return s.capitalize()
