"""Validated agent reports -> the normalised containers (docs/api.md) (plain dicts), and lookups.

Each container of a report is a trimmed ``docker inspect`` document, so it goes through
the core's normaliser (``archnest.detail_dict_from_inspect``) like every other source's
inspect; this module adds memoised env masking and, for the ingest, a cache of each
host's containers by their raw JSON (:class:`ContainerCache`). Normalisation runs at
ingest and the result is stored as JSON, so reads only slice stored data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from archnest import ContainerSummary, detail_dict_from_inspect, mask_env

from .payload import STATS_FIELDS, AgentReport, validate_container

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


def with_stats(containers_json: str, stats_json: str) -> list[dict[str, Any]]:
    """A host's stored containers with the report's stats samples attached by id (the
    normalised detail's ``stats``; None for a container without a sample)."""
    containers = orjson.loads(containers_json)
    stats = orjson.loads(stats_json)
    for c in containers:
        c["stats"] = stats.get(c["id"])
    return containers


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


@dataclass(frozen=True, slots=True)
class _Entry:
    """One container as the ingest keeps it between reports (nothing here is mutated)."""

    summary: ContainerSummary
    body: bytes  # the stored detail's JSON, without its stats (stored apart)
    cid: str
    running: bool
    # What the live view's events compare (core LiveState.publish_containers).
    shown: tuple[str, str, str, str | None]


@dataclass(frozen=True, slots=True)
class NormalisedContainers:
    """A report's containers: the list rows, the stored JSON, and the running count.

    ``changed`` is False when they are what the host's previous report gave (same
    containers, same order, same bytes): then ``summaries`` and ``json`` are the very
    objects handed out for that report, and nothing needs to be stored again.
    ``shown_changed`` is False when, container by container, the id, state, name and
    status are those of the previous report: the live view has nothing to announce.
    """

    summaries: list[ContainerSummary]
    json: str
    running_count: int
    changed: bool
    shown_changed: bool


@dataclass(frozen=True, slots=True)
class _Host:
    """A host's latest report as the cache keeps it."""

    raws: list[bytes]
    entries: list[_Entry]
    containers: NormalisedContainers


def _key(raw: bytes) -> tuple[int, bytes]:
    """A cheap key of a container's raw JSON (its length and first bytes, which hold
    its id: the agent writes ``Id`` first). Only a hint where to look: a hit is taken
    when the whole bytes are equal."""
    return len(raw), raw[:96]


class ContainerCache:
    """Each host's containers of its latest report, validated and normalised, keyed by
    their raw JSON.

    An agent reports every container on every run; one that did not change comes back
    as the very same bytes (its stats are a separate member of the report). Those bytes
    are the key, so a hit is exactly what validating and normalising them again would
    give: no staleness, and no way for one host's report to affect another host's
    entries. Only the latest report of each host is kept; when more than
    ``max_entries`` containers are held, the hosts that reported longest ago are
    dropped (they are validated again on their next report).

    Lookup is by position first (the agent lists containers in the same order each
    time, and comparing two equal byte strings is cheaper than hashing one), then
    among the host's previous containers by :func:`_key`, confirmed by equal bytes.
    """

    # About 3.9 kB per container (its raw JSON, stored JSON and list row): 25,000 is
    # ~100 MB at most; 200 hosts of 50 containers take ~40 MB.
    def __init__(self, mask: EnvMasker | None = None, max_entries: int = 25_000):
        self.mask = mask or EnvMasker()
        self.max_entries = max_entries
        # host -> its latest report's containers (raw JSON, entries, result), the
        # hosts in the order they reported
        self._hosts: dict[str, _Host] = {}
        self._size = 0
        self.hits = 0  # for tests and operators
        self.misses = 0

    def normalise(self, host: str, raws: list[bytes]) -> NormalisedContainers:
        """Validate (when new) and normalise ``raws``: the list rows, and the JSON array
        stored for the host (the details without their stats, which the report's row
        holds by container id).

        Raises :class:`.payload.ReportInvalid` for a container off schema; the cache
        is then left as it was.
        """
        host_id = f"agent:{host}"
        previous = self._hosts.get(host)
        old_raws, old_entries = (previous.raws, previous.entries) if previous else ([], [])
        misses = 0
        if len(raws) == len(old_raws):
            # The usual report: the same containers in the same order, a few changed.
            # Equal bytes at the same place are compared in one pass (no per-container
            # bookkeeping); only the places that differ are looked at one by one.
            entries = list(old_entries)
            changed = [i for i, (a, b) in enumerate(zip(raws, old_raws, strict=True)) if a != b]
            if not changed and previous is not None:
                self.hits += len(raws)
                self._store(host, _Host(raws, old_entries, previous.containers))
                return NormalisedContainers(
                    previous.containers.summaries,
                    previous.containers.json,
                    previous.containers.running_count,
                    changed=False,
                    shown_changed=False,
                )
        else:
            entries = [None] * len(raws)  # type: ignore[list-item]
            changed = list(range(len(raws)))
        by_key: dict[tuple[int, bytes], int] | None = None  # built at a positional miss
        old_count = len(old_raws)
        for index in changed:
            raw = raws[index]
            old = old_raws[index] if index < old_count else None
            if old == raw:
                entry = old_entries[index]
            elif old is not None and old[:96] == raw[:96]:
                # The same container (its id comes first) at the same place, changed.
                entry = self._entry(raw, index, host_id)
                misses += 1
            else:  # added, removed or moved: look among all of the host's previous ones
                if by_key is None:
                    by_key = {_key(r): i for i, r in enumerate(old_raws)}
                at = by_key.get(_key(raw))
                if at is not None and old_raws[at] == raw:
                    entry = old_entries[at]
                else:
                    entry = self._entry(raw, index, host_id)
                    misses += 1
            entries[index] = entry
        self.hits += len(raws) - misses
        self.misses += misses
        shown_changed = previous is None or len(raws) != old_count
        if not shown_changed:
            shown_changed = any(entries[i].shown != old_entries[i].shown for i in changed)
        containers = NormalisedContainers(
            [e.summary for e in entries],
            (b"[%b]" % b",".join([e.body for e in entries])).decode(),
            sum(e.running for e in entries),
            changed=True,
            shown_changed=shown_changed,
        )
        self._store(host, _Host(raws, entries, containers))
        return containers

    def previous(self, host: str | None) -> list[bytes]:
        """The raw JSON of the containers of ``host``'s latest report ([] if unknown)."""
        kept = self._hosts.get(host) if host is not None else None
        return kept.raws if kept is not None else []

    def forget(self, host: str) -> None:
        """Drop a host's containers: its next report is validated and stored whole
        (after a refused or failed store, and when the host is forgotten)."""
        gone = self._hosts.pop(host, None)
        if gone is not None:
            self._size -= len(gone.raws)

    def _entry(self, raw: bytes, index: int, host_id: str) -> _Entry:
        detail = detail_dict_from_inspect(validate_container(raw, index), host_id, None, self.mask)
        del detail["stats"]
        summary = ContainerSummary(**{k: detail[k] for k in SUMMARY_FIELDS})
        return _Entry(
            summary,
            orjson.dumps(detail),
            detail["id"],
            detail["state"] == "running",
            (detail["id"], detail["state"], detail["name"], detail["status"]),
        )

    def _store(self, host: str, kept: _Host) -> None:
        self.forget(host)  # re-inserted last: the dict's order is the hosts' report order
        self._hosts[host] = kept
        self._size += len(kept.raws)
        while self._size > self.max_entries and len(self._hosts) > 1:
            self.forget(next(iter(self._hosts)))
