"""Parsing docker CLI output (20.10 and current releases) for the CLI fallback.

``docker ps`` lines are turned back into the Engine API's list-row shape and normalised
by the core's ``summary_from_engine_list``, exactly as rows read through the Engine API
stream are: the CLI fallback differs from it only in how the row was fetched.
"""

from __future__ import annotations

import json
import re
from typing import Any

from archnest import ContainerSummary, LogLine, Stats, iso_utc, summary_from_engine_list

_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*$")
# "0.0.0.0:8080->80/tcp", ":::8080-8081->80-81/tcp", "443/tcp", "[::]:53->53/udp"
_PORT = re.compile(
    r"^(?:(?P<ip>\[[0-9a-fA-F:]*\]|[0-9a-fA-F.:]*):(?P<pub>\d+)(?:-(?P<pub_end>\d+))?->)?"
    r"(?P<priv>\d+)(?:-(?P<priv_end>\d+))?/(?P<proto>\w+)$"
)


def parse_size(text: str | None) -> int | None:
    """``"1.785MiB"`` -> bytes (docker prints binary units for memory, SI for I/O)."""
    if not text:
        return None
    m = _SIZE.match(text)
    if not m:
        return None
    unit = _UNITS.get((m.group(2) or "b").lower())
    if unit is None:
        return None
    return round(float(m.group(1)) * unit)


def _pair(text: str | None) -> tuple[int | None, int | None]:
    left, _, right = (text or "").partition("/")
    return parse_size(left), parse_size(right)


def parse_percent(text: str | None) -> float | None:
    value = (text or "").strip().rstrip("%")
    try:
        return round(float(value), 2)
    except ValueError:
        return None


def parse_stats(line: str) -> Stats | None:
    """One ``docker stats --no-stream --format '{{json .}}'`` line."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    mem_used, mem_limit = _pair(data.get("MemUsage"))
    rx, tx = _pair(data.get("NetIO"))
    read, write = _pair(data.get("BlockIO"))
    try:
        pids: int | None = int(data.get("PIDs", ""))
    except ValueError:
        pids = None
    return Stats(
        cpu_percent=parse_percent(data.get("CPUPerc")),
        mem_usage_bytes=mem_used,
        mem_limit_bytes=mem_limit,
        net_rx_bytes=rx,
        net_tx_bytes=tx,
        block_read_bytes=read,
        block_write_bytes=write,
        pids=pids,
    )


def parse_labels(raw: Any) -> dict[str, str]:
    """Labels are a dict in some releases and ``"a=b,c=d"`` in others (20.10, current
    CLI). A value may itself contain commas: a piece without ``=`` continues it."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    last: str | None = None
    for piece in str(raw or "").split(","):
        if "=" in piece:
            key, _, value = piece.partition("=")
            out[key] = value
            last = key
        elif last is not None:
            out[last] += "," + piece
    return out


def parse_ports(raw: Any) -> list[dict[str, Any]]:
    """``docker ps``'s ports text -> the Engine API's ``Ports`` entries (ranges expanded)."""
    out: list[dict[str, Any]] = []
    for item in str(raw or "").split(","):
        m = _PORT.match(item.strip())
        if not m:
            continue
        priv, priv_end = int(m["priv"]), int(m["priv_end"] or m["priv"])
        pub = int(m["pub"]) if m["pub"] else None
        ip = (m["ip"] or "").strip("[]") or None if m["pub"] else None
        for offset in range(0, min(priv_end - priv, 1024) + 1):
            entry: dict[str, Any] = {"PrivatePort": priv + offset, "Type": m["proto"]}
            if pub is not None:
                entry.update(PublicPort=pub + offset, IP=ip)
            out.append(entry)
    return out


def engine_row(data: dict) -> dict[str, Any]:
    """One ``docker ps --format '{{json .}}'`` object as an Engine API list row.

    The CLI prints the Engine's own ``Status`` text; ``State`` is missing before 20.10's
    successors (the core then derives it from ``Status``), labels are ``"a=b,c=d"`` and
    ``CreatedAt`` is the CLI's local-time format (all read by the core as well).
    """
    return {
        "Id": str(data["ID"]),
        "Names": str(data.get("Names") or "").split(","),
        "Image": str(data.get("Image") or ""),
        "State": str(data.get("State") or ""),
        "Status": str(data.get("Status") or ""),
        "Created": data.get("CreatedAt"),
        "Ports": parse_ports(data.get("Ports")),
        "Labels": parse_labels(data.get("Labels")),
    }


def parse_ps_line(line: str, host_id: str) -> ContainerSummary | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.get("ID"):
        return None
    return summary_from_engine_list(engine_row(data), host_id)


def parse_ps(output: bytes, host_id: str) -> list[ContainerSummary]:
    out = []
    for line in output.decode(errors="replace").splitlines():
        item = parse_ps_line(line, host_id) if line.strip() else None
        if item is not None:
            out.append(item)
    return out


def split_timestamp(line: str) -> tuple[str | None, str]:
    """``docker logs --timestamps`` prefixes each line with RFC 3339 nanoseconds."""
    head, sep, rest = line.partition(" ")
    if sep and len(head) >= 20 and head[4] == "-" and head[10] == "T":
        return head, rest
    return None, line


def log_lines(data: bytes, stream: str) -> list[tuple[str, LogLine]]:
    """(sort key, line) pairs of one stream; the raw RFC 3339 stamp sorts correctly."""
    out = []
    for raw in data.decode(errors="replace").splitlines():
        ts, text = split_timestamp(raw)
        out.append((ts or "", make_line(stream, ts, text)))
    return out


def make_line(stream: str, ts: str | None, text: str) -> LogLine:
    # Log times keep their fraction: lines within one second still read in order.
    ts_iso = iso_utc(ts, fraction=True) if ts else None
    return LogLine(stream=stream, text=text, ts=ts_iso)  # type: ignore[arg-type]


def merge_logs(stdout: bytes, stderr: bytes, *, timestamps: bool) -> list[LogLine]:
    pairs = log_lines(stdout, "stdout") + log_lines(stderr, "stderr")
    pairs.sort(key=lambda p: p[0])  # stable: same-stamp lines keep their stream order
    lines = [p[1] for p in pairs]
    if not timestamps:
        for ln in lines:
            ln.ts = None
    return lines
