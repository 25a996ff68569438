"""Jinja2 filters of the Containers UI: relative times, byte sizes, ports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2

from .containers import Port

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def reltime(value: str | None, now: datetime | None = None) -> str:
    """``"3 minutes ago"`` for an ISO 8601 timestamp; ``""`` when there is none."""
    when = parse_iso(value)
    if when is None:
        return value or ""
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"),
                       (3600, "hour"), (60, "minute")):  # fmt: skip
        if seconds >= size:
            count = seconds // size
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "\u2013"
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - loop always returns


def port_text(port: Port | dict[str, Any]) -> str:
    """``0.0.0.0:8080→80/tcp`` like ``docker ps``; just ``80/tcp`` when unpublished."""
    p = port if isinstance(port, Port) else Port(**port)
    inner = f"{p.private}/{p.type}"
    if p.public is None:
        return inner
    ip = f"{p.ip}:" if p.ip else ""
    return f"{ip}{p.public}\u2192{inner}"


def install_filters(env: jinja2.Environment) -> None:
    env.filters["reltime"] = reltime
    env.filters["human_bytes"] = human_bytes
    env.filters["port_text"] = port_text
