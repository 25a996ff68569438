"""Docker's JSON -> the normalised container model (docs/api.md): the one normaliser.

Every source ends here, so a container reads the same whichever way it was read:

- Engine API list rows (``GET /containers/json``): the ``docker`` source, the ``ssh``
  source's dial-stdio stream, and its CLI fallback, which rebuilds this shape from
  ``docker ps`` lines -> :func:`summary_from_engine_list`.
- inspect documents (the Engine API and ``docker inspect`` print the same JSON; the
  agent sends a trimmed copy) -> :func:`detail_dict_from_inspect` (plain dicts, for the
  agent's ingest hot path) and :func:`detail_from_inspect` (the model).
- Engine API stats samples -> :func:`stats_from_engine`.
- log output (the Engine API's frames and ``docker logs --timestamps`` print the same
  lines) -> :class:`LogLineSplitter` / :func:`log_line_from_engine`.

The choices that make the sources agree:

- ``status`` is Docker's own phrase (the daemon's ``State.String()``) without its
  durations: "Up (healthy)", "Up (health: starting)", "Up (Paused)", "Restarting (1)",
  "Exited (0)", "Created", "Dead", "Removal In Progress". A duration ("Up 5 minutes")
  would differ between two reads a second apart and would go stale in a stored agent
  report; the times themselves are ``created``, ``started_at`` and ``finished_at``.
- timestamps: :func:`archnest.iso_utc`, whole seconds (the list's precision).
- ports sorted by (private, type, public, ip); networks by name; env masked by
  :func:`archnest.mask_env`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import PrivateAttr

from .containers import STATES, ContainerDetail, ContainerSummary, LogLine, Port, Stats, iso_utc
from .secrets import mask_env, masked_env_digests

EnvMask = Callable[[Iterable[str] | None], list[dict]]

_KNOWN_STATES = frozenset((*STATES, "removing"))
# Docker's status phrases that start with something other than the state's own name.
_STATUS_PREFIXES = (
    ("exited", "exited"),
    ("restarting", "restarting"),
    ("created", "created"),
    ("dead", "dead"),
    ("removal", "removing"),
)
# "Up 5 minutes (healthy)" -> "Up (healthy)"; Docker's durations hold no parentheses.
_UP = re.compile(r"^Up\b[^()]*?(?P<tail> \([^()]*\))?$")
_WITH_CODE = re.compile(r"^(?:Exited|Restarting) \(-?\d+\)")


def normalise_state(raw: str | None) -> str:
    """A state word, or a docker CLI/Engine status phrase ("Up 2 minutes (Paused)",
    "Exited (0) 3 hours ago", "Removal In Progress"), as one of the model's states."""
    value = (raw or "").strip().lower()
    if value in _KNOWN_STATES:
        return value
    if value.startswith("up"):
        return "paused" if "paused" in value else "running"
    for prefix, state in _STATUS_PREFIXES:
        if value.startswith(prefix):
            return state
    return value or "unknown"


@functools.lru_cache(maxsize=4096)
def status_from_list(text: str | None) -> str:
    """The Engine's (or ``docker ps``'s) status phrase without its durations."""
    text = (text or "").strip()
    m = _WITH_CODE.match(text)
    if m:
        return m.group(0)
    m = _UP.match(text)
    if m:
        return "Up" + (m.group("tail") or "")
    return text


def _zero_time(value: Any) -> bool:
    return not value or str(value).startswith("0001-01-01")


def status_from_state(state: Mapping[str, Any]) -> str:
    """An inspect ``State`` as the phrase Docker's list gives, without the durations.

    Follows the daemon's ``State.String()`` branch for branch, so a container reads
    the same through an inspect (detail, agent) as through a list row.
    """
    return _status_text(normalise_state(state.get("Status")), state)


def _status_text(word: str, state: Mapping[str, Any]) -> str:
    code = state.get("ExitCode") or 0
    if word == "paused":
        return "Up (Paused)"
    if word == "restarting":
        return f"Restarting ({code})"
    if word == "running":
        health = state.get("Health")
        if health is None:
            return "Up"
        # Docker: no status yet counts as unhealthy; "starting" is spelled out.
        status = health.get("Status") or "unhealthy"
        return f"Up ({'health: starting' if status == 'starting' else status})"
    if word == "removing":
        return "Removal In Progress"
    if word == "dead":
        return "Dead"
    if _zero_time(state.get("StartedAt")):
        return "Created"
    if _zero_time(state.get("FinishedAt")):
        return ""
    return f"Exited ({code})"


def _port_key(p: Mapping[str, Any]) -> tuple:
    return (p["private"], p["type"], p["public"] or 0, p["ip"] or "")


def _port_dicts_from_inspect(port_map: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, bindings in (port_map or {}).items():
        private, _, proto = key.partition("/")
        if not private.isdigit():
            continue
        priv, proto = int(private), proto or "tcp"
        if not bindings:
            out.append({"private": priv, "public": None, "type": proto, "ip": None})
            continue
        for b in bindings:
            pub = b.get("HostPort")
            out.append(
                {
                    "private": priv,
                    "public": int(pub) if pub and pub.isdigit() else None,
                    "type": proto,
                    "ip": b.get("HostIp") or None,
                }
            )
    if len(out) > 1:
        out.sort(key=_port_key)
    return out


def ports_from_inspect(port_map: Mapping[str, Any] | None) -> list[Port]:
    """Inspect's ``NetworkSettings.Ports`` -> normalised ports."""
    return [Port(**p) for p in _port_dicts_from_inspect(port_map)]


def summary_from_engine_list(item: Mapping[str, Any], host_id: str) -> ContainerSummary:
    """One Engine API ``GET /containers/json`` entry -> the normalised list row."""
    names = item.get("Names") or []
    ports = [
        {
            "private": p["PrivatePort"],
            "public": p.get("PublicPort"),
            "type": p.get("Type") or "tcp",
            "ip": p.get("IP") or None,
        }
        for p in item.get("Ports") or []
        if "PrivatePort" in p
    ]
    ports.sort(key=_port_key)
    return ContainerSummary(
        id=item.get("Id", ""),
        name=(names[0] if names else "").lstrip("/"),
        image=item.get("Image", ""),
        state=normalise_state(item.get("State") or item.get("Status")),
        status=status_from_list(item.get("Status")),
        created=iso_utc(item.get("Created")),
        ports=[Port(**p) for p in ports],
        labels=item.get("Labels") or {},
        host_id=host_id,
    )


def _as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def detail_dict_from_inspect(
    data: Mapping[str, Any],
    host_id: str,
    stats: Mapping[str, Any] | Stats | None = None,
    mask: EnvMask = mask_env,
) -> dict[str, Any]:
    """An inspect document -> the container detail (docs/api.md) as plain JSON-ready dicts.

    The fields of :class:`ContainerDetail` exactly; the list row is its
    :class:`ContainerSummary` fields. ``stats`` is a sample with the :class:`Stats`
    fields (or None: not running / no sample). ``mask`` masks ``Config.Env``; pass a
    memoising wrapper of :func:`mask_env` where the same env lists come back often.
    """
    cfg = data.get("Config") or {}
    state = data.get("State") or {}
    net = data.get("NetworkSettings") or {}
    restart = (data.get("HostConfig") or {}).get("RestartPolicy") or {}
    cmd = _as_list(cfg.get("Entrypoint")) + _as_list(cfg.get("Cmd"))
    networks = net.get("Networks") or {}
    word = normalise_state(state.get("Status"))
    return {
        "id": data.get("Id", ""),
        "name": (data.get("Name") or "").lstrip("/"),
        "image": cfg.get("Image") or data.get("Image") or "",
        "state": word,
        "status": _status_text(word, state),
        "created": iso_utc(data.get("Created")),
        "ports": _port_dicts_from_inspect(net.get("Ports")),
        "labels": cfg.get("Labels") or {},
        "host_id": host_id,
        "command": " ".join(cmd) or None,
        "started_at": iso_utc(state.get("StartedAt")),
        "finished_at": iso_utc(state.get("FinishedAt")),
        "exit_code": state.get("ExitCode"),
        "restart_count": data.get("RestartCount"),
        "health": (state.get("Health") or {}).get("Status"),
        "networks": [
            {
                "name": name,
                "ip": (n or {}).get("IPAddress") or None,
                "mac": (n or {}).get("MacAddress") or None,
                "gateway": (n or {}).get("Gateway") or None,
            }
            for name, n in (sorted(networks.items()) if len(networks) > 1 else networks.items())
        ],
        "mounts": [
            {
                "type": m.get("Type"),
                "source": m.get("Source") or m.get("Name"),
                "destination": m.get("Destination", ""),
                "mode": m.get("Mode") or None,
                "rw": bool(m.get("RW", True)),
            }
            for m in data.get("Mounts") or ()
        ],
        "env": mask(cfg.get("Env")),
        "stats": stats,
        "extra": {
            "image_id": data.get("Image") or None,
            "user": cfg.get("User") or None,
            "restart_policy": restart.get("Name") or None,
            "oom_killed": bool(state.get("OOMKilled")),
            "error": state.get("Error") or None,
        },
    }


class _DetailWithDigests(ContainerDetail):
    # Keyed digests of the masked env values, by name: a private attribute, so never in
    # the model's JSON or schema; read only by the container diff (secret_digests).
    _secret_digests: dict[str, str] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        # The same container as the plain model with the same fields: the digests are
        # private bookkeeping, not part of what the detail says.
        if isinstance(other, ContainerDetail):
            return self.model_dump() == other.model_dump()
        return NotImplemented

    __hash__ = ContainerDetail.__hash__


def detail_from_inspect(
    data: Mapping[str, Any], host_id: str, stats: Stats | None = None
) -> ContainerDetail:
    """An inspect document (Engine API or ``docker inspect``) -> the detail model."""
    detail = _DetailWithDigests(**detail_dict_from_inspect(data, host_id, stats))
    detail._secret_digests = masked_env_digests((data.get("Config") or {}).get("Env"))
    return detail


def secret_digests(detail: ContainerDetail) -> dict[str, str] | None:
    """The keyed digests of ``detail``'s masked env values, or None when its source
    sent the values already masked (the agent) and they cannot be compared."""
    return getattr(detail, "_secret_digests", None)


def cpu_percent_from_engine_stats(stats: Mapping[str, Any]) -> float | None:
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


def stats_from_engine(stats: Mapping[str, Any] | None) -> Stats | None:
    """An Engine API ``/containers/{id}/stats?stream=false`` sample, computed as
    ``docker stats`` does (what the ssh and agent sources read)."""
    if not stats:
        return None
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    # docker stats subtracts the page cache: cgroup v1 "total_inactive_file" first,
    # then v2 "inactive_file".
    inner = mem.get("stats") or {}
    cache = inner.get("total_inactive_file", inner.get("inactive_file", 0)) or 0
    if usage is not None and cache and cache < usage:
        usage -= cache
    # A container without a network has no "networks": docker stats shows 0B / 0B.
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
        net_rx_bytes=rx,
        net_tx_bytes=tx,
        block_read_bytes=read,
        block_write_bytes=write,
        pids=(stats.get("pids_stats") or {}).get("current"),
    )


def cpu_counters(sample: Mapping[str, Any]) -> tuple[int, int] | None:
    """(container CPU time, system CPU time) of an Engine stats document, in ns."""
    try:
        cpu = sample["cpu_stats"]
        return int(cpu["cpu_usage"]["total_usage"]), int(cpu["system_cpu_usage"])
    except (KeyError, TypeError, ValueError):
        return None


def stats_between(sample: Mapping[str, Any], previous: tuple[int, int] | None) -> Stats | None:
    """A one-shot Engine stats document (no ``precpu_stats``) as :class:`Stats`, its CPU
    share measured since ``previous`` (:func:`cpu_counters` of the container's previous
    sample): what ``docker stats`` computes over its one second, here over the time
    between two samples. Without ``previous`` the CPU share is unknown (None), not the
    container's lifetime average. A document that has ``precpu_stats`` (an engine
    older than API 1.41 ignores ``one-shot`` and waits for the second reading) is read
    as :func:`stats_from_engine` reads it."""
    pre = sample.get("precpu_stats") or {}
    if pre.get("system_cpu_usage"):
        return stats_from_engine(sample)
    if previous is None:
        stats = stats_from_engine(sample)
        if stats is not None:
            stats.cpu_percent = None
        return stats
    total, system = previous
    filled = {
        **sample,
        "precpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system},
    }
    return stats_from_engine(filled)


# ---- log lines --------------------------------------------------------------------------

# Docker's --timestamps prefix: RFC 3339 with nanoseconds, then one space.
_LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ")
# The engine's own form: UTC with "Z" and nanoseconds; rendered without a datetime.
_LOG_TS_UTC = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z ")


def log_line_from_engine(
    stream: str, raw: str, timestamps: bool, *, stamped: bool | None = None
) -> LogLine:
    """One line of Docker's log output (without its newline) as a :class:`LogLine`:
    with ``timestamps`` its leading RFC 3339 time becomes ``ts`` (ISO 8601 UTC with
    microseconds, as :func:`iso_utc` with ``fraction=True`` renders it). ``stamped``
    (default: ``timestamps``) says the output carries that time: stamped output read
    without ``timestamps`` loses the prefix and gets no ``ts``."""
    text = raw.rstrip("\r")
    ts = None
    if timestamps if stamped is None else stamped:
        m = _LOG_TS_UTC.match(text)
        if m:
            # What iso_utc(..., fraction=True) gives for it (microseconds, none if 0),
            # at a fraction of the cost: a downloaded or searched log is 10^5+ lines.
            whole, frac = m.groups()
            micro = (frac or "")[:6].ljust(6, "0")
            ts = f"{whole}.{micro}Z" if micro != "000000" else f"{whole}Z"
            text = text[m.end() :]
        else:
            m = _LOG_TS.match(text)
            if m:
                ts, text = iso_utc(m.group(1), fraction=True), text[m.end() :]
        if not timestamps:
            ts = None
    # Built from checked parts (a stream name, text, a rendered time): no validation.
    return LogLine.model_construct(stream=stream, text=text, ts=ts)


class LogLineSplitter:
    """Docker's log output, received in pieces of any size per stream, as lines: a
    piece may end inside a line or hold many. Feeding whole network reads instead of
    reading line by line keeps a 100,000-line log to one await per read."""

    def __init__(self, timestamps: bool, *, stamped: bool | None = None):
        self.timestamps = timestamps
        self.stamped = timestamps if stamped is None else stamped
        self._buf: dict[str, str] = {}

    def feed(self, stream: str, data: bytes) -> list[LogLine]:
        text = self._buf.pop(stream, "") + data.decode("utf-8", errors="replace")
        *complete, rest = text.split("\n")
        if rest:
            self._buf[stream] = rest
        ts, stamped = self.timestamps, self.stamped
        return [log_line_from_engine(stream, raw, ts, stamped=stamped) for raw in complete]

    def flush(self, stream: str | None = None) -> list[LogLine]:
        """The unfinished last line of ``stream`` (of every stream with None)."""
        chosen = list(self._buf) if stream is None else [stream]
        out = []
        for name in chosen:
            raw = self._buf.pop(name, "")
            if raw:
                out.append(log_line_from_engine(name, raw, self.timestamps, stamped=self.stamped))
        return out
