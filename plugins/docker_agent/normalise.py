"""Validated agent containers -> api.md's normalised container model (plain dicts).

This runs once per container at ingest and the result is stored as JSON, so reads
only slice stored data. It is hand-written over dicts rather than built through the
core's pydantic models because it sits on the ingest hot path (docs/performance.md,
"Agent ingest"); the output has exactly the fields of ``archnest.ContainerDetail``
(a test builds that model from it).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from archnest import MASK, mask_env, normalise_state

from .payload import STATS_FIELDS, AgentReport

_ZERO_TIME = "0001-01-01"
_RFC3339_Z = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$")

SUMMARY_FIELDS = (
    "id", "name", "image", "state", "status", "created", "ports", "labels", "host_id",
)  # fmt: skip
# `docker ps` without -a lists these: paused and restarting containers are "up".
LISTED_BY_DEFAULT = frozenset({"running", "paused", "restarting"})


_iso_cache: dict[str, str | None] = {}


def iso(value: str | None) -> str | None:
    """Docker's RFC 3339 (nanoseconds, 'Z') -> ISO 8601 UTC with microseconds.

    Memoised (bounded): the same created/started timestamps come back in every report
    of a host. Docker's zero time means "never" and becomes None.
    """
    if not value:
        return None
    hit = _iso_cache.get(value, _MISSING)
    if hit is not _MISSING:
        return hit  # type: ignore[return-value]
    if len(_iso_cache) >= 50000:
        _iso_cache.clear()
    result = _iso_cache[value] = _iso(value)
    return result


_MISSING = object()


def _iso(value: str) -> str | None:
    if value.startswith(_ZERO_TIME):
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
    (bounded; cleared when full). Cached lists are only serialised, never mutated.
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


def _status_text(s: str, state: dict) -> str:
    if s == "running":
        health = (state.get("Health") or {}).get("Status")
        return f"Up ({health})" if health and health != "none" else "Up"
    if s == "paused":
        return "Up (Paused)"
    if s == "exited":
        return f"Exited ({state.get('ExitCode') or 0})"
    return s.capitalize()


def _ports(ports: dict[str, list[dict] | None] | None) -> list[dict]:
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
            pub = b.get("HostPort")
            out.append(
                {
                    "private": priv,
                    "public": int(pub) if pub and pub.isdigit() else None,
                    "type": proto,
                    "ip": b.get("HostIp") or None,
                }
            )
    out.sort(key=lambda p: (p["private"], p["type"], p["public"] or 0))
    return out


def _as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _stats(sample: dict | None) -> dict | None:
    if sample is None:
        return None
    return {k: sample.get(k) for k in STATS_FIELDS}


def normalise_container(
    c: dict[str, Any], host_id: str, stats: dict | None, mask: EnvMasker
) -> dict[str, Any]:
    """One validated agent container -> api.md's normalised detail (a plain dict)."""
    cfg = c.get("Config") or {}
    state = c.get("State") or {}
    net = c.get("NetworkSettings") or {}
    health = state.get("Health") or {}
    restart = (c.get("HostConfig") or {}).get("RestartPolicy") or {}
    cmd = _as_list(cfg.get("Entrypoint")) + _as_list(cfg.get("Cmd"))
    state_word = normalise_state(state.get("Status"))
    return {
        "id": c["Id"],
        "name": (c.get("Name") or "").lstrip("/"),
        "image": cfg.get("Image") or c.get("Image") or "",
        "state": state_word,
        "status": _status_text(state_word, state),
        "created": iso(c.get("Created")),
        "ports": _ports(net.get("Ports")),
        "labels": cfg.get("Labels") or {},
        "host_id": host_id,
        "command": " ".join(cmd) or None,
        "started_at": iso(state.get("StartedAt")),
        "finished_at": iso(state.get("FinishedAt")),
        "exit_code": state.get("ExitCode"),
        "restart_count": c.get("RestartCount"),
        "health": health.get("Status"),
        "networks": [
            {
                "name": name,
                "ip": (n or {}).get("IPAddress") or None,
                "mac": (n or {}).get("MacAddress") or None,
                "gateway": (n or {}).get("Gateway") or None,
            }
            for name, n in (net.get("Networks") or {}).items()
        ],
        "mounts": [
            {
                "type": m.get("Type"),
                "source": m.get("Source") or m.get("Name"),
                "destination": m.get("Destination", ""),
                "mode": m.get("Mode") or None,
                "rw": m.get("RW", True),
            }
            for m in c.get("Mounts") or ()
        ],
        "env": mask(cfg.get("Env")),
        "stats": _stats(stats),
        "extra": {
            "image_id": c.get("Image"),
            "user": cfg.get("User") or None,
            "restart_policy": restart.get("Name"),
            "oom_killed": bool(state.get("OOMKilled")),
            "error": state.get("Error") or None,
        },
    }


def normalise_report(
    report: AgentReport, host_id: str, mask: EnvMasker | None = None
) -> list[dict[str, Any]]:
    """Every container of a report, normalised, stats attached by full id."""
    mask = mask or EnvMasker()
    stats = report.stats
    return [normalise_container(c, host_id, stats.get(c["Id"]), mask) for c in report.containers]


def summary(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: detail.get(k) for k in SUMMARY_FIELDS}


def find_container(containers: list[dict[str, Any]], ref: str) -> dict[str, Any] | None:
    """Docker's lookup order: exact id, exact name, then a unique id prefix."""
    for c in containers:
        if c["id"] == ref or c["name"] == ref:
            return c
    matches = [c for c in containers if c["id"].startswith(ref)]
    return matches[0] if len(matches) == 1 else None
