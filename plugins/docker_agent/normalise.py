"""Validated agent reports -> the normalised containers (docs/api.md) (plain dicts), and lookups.

Each container of a report is a trimmed ``docker inspect`` document, so it goes through
the core's normaliser (``archnest.detail_dict_from_inspect``) like every other source's
inspect; this module only adds memoised env masking on top. Normalisation runs once per
container at ingest and the result is stored as JSON, so reads only slice stored data.
"""

from __future__ import annotations

from typing import Any

from archnest import ContainerSummary, detail_dict_from_inspect, mask_env

from .payload import STATS_FIELDS, AgentReport

SUMMARY_FIELDS = tuple(ContainerSummary.model_fields)
# `docker ps` without -a lists these: paused and restarting containers are "up".
LISTED_BY_DEFAULT = frozenset({"running", "paused", "restarting"})


class EnvMasker:
    """The core's ``mask_env`` (defence in depth: the agent masked already), memoised.

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
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = hit
        return hit


def _stats(sample: dict | None) -> dict | None:
    if sample is None:
        return None
    return {k: sample.get(k) for k in STATS_FIELDS}


def normalise_report(
    report: AgentReport, host_id: str, mask: EnvMasker | None = None
) -> list[dict[str, Any]]:
    """Every container of a report, normalised, stats attached by full id."""
    mask = mask or EnvMasker()
    stats = report.stats
    return [
        detail_dict_from_inspect(c, host_id, _stats(stats.get(c["Id"])), mask)
        for c in report.containers
    ]


def summary(detail: dict[str, Any]) -> dict[str, Any]:
    """The list row of a normalised detail."""
    return {k: detail.get(k) for k in SUMMARY_FIELDS}


def find_container(containers: list[dict[str, Any]], ref: str) -> dict[str, Any] | None:
    """Docker's lookup order: exact id, exact name, then a unique id prefix."""
    for c in containers:
        if c["id"] == ref or c["name"] == ref:
            return c
    matches = [c for c in containers if c["id"].startswith(ref)]
    return matches[0] if len(matches) == 1 else None
