"""Filter, sort and page a list of containers: the all-hosts view, one host's list and
``GET /api/containers`` share this, so a filter means the same thing everywhere.

Pure: lists in, lists out, no I/O. With 10,000 containers on 200 hosts the browser gets
one page of rows, never the whole fleet, and the work here stays a few milliseconds.

The filter text ``q`` is words, each matched (case-insensitively, as a substring)
against a row's name, image, host name and source, state, status, compose project and
ports; every word must match. A word ``key=value`` is a structured filter instead:
``state=``, ``project=``, ``host=`` (a host id or name), ``name=`` (exact) and ``id=``
(an id prefix); values may be comma-separated (any of them), keys combine with AND.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .containers import ContainerSummary
from .errors import BadRequest
from .openapi import Param

PROJECT_LABEL = "com.docker.compose.project"
SORT_KEYS: tuple[str, ...] = ("name", "host", "image", "state", "created", "status")
ORDERS: tuple[str, ...] = ("asc", "desc")
FILTER_KEYS: tuple[str, ...] = ("state", "project", "host", "name", "id")
# The states the engine reports, in the order "sort by state" shows them: what runs
# first, what is gone last.
STATE_ORDER: tuple[str, ...] = (
    "running",
    "restarting",
    "paused",
    "created",
    "exited",
    "dead",
    "removing",
)
MAX_LIMIT = 500  # rows in one answer at most: one page, not the fleet
UI_PAGE_SIZE = 100
MAX_QUERY = 500  # characters of filter text
MAX_VALUE = 200  # characters of one structured value (project, host)

_STATE_RANK = {s: i for i, s in enumerate(STATE_ORDER)}


@dataclass(frozen=True)
class Filter:
    """What a row must match: every word, and for each structured key one of its values."""

    words: tuple[str, ...] = ()
    where: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.words or self.where)


def parse_filter(q: str, **extra: Iterable[str]) -> Filter:
    """The filter of the text ``q`` plus structured values given apart (``project=``
    from a link, ``state=`` from a control). Unknown ``key=value`` words stay words."""
    words: list[str] = []
    where: dict[str, set[str]] = {}
    for word in q.lower().split():
        key, eq, value = word.partition("=")
        if eq and key in FILTER_KEYS and value:
            where.setdefault(key, set()).update(v for v in value.split(",") if v)
        else:
            words.append(word)
    for key, values in extra.items():
        chosen = {v.lower() for v in values if v}
        if chosen:
            # A value given apart and the same key in q must both hold: the intersection.
            where[key] = where[key] & chosen if key in where else chosen
    return Filter(tuple(words), {k: frozenset(v) for k, v in where.items()})


def project_of(c: ContainerSummary) -> str:
    return c.labels.get(PROJECT_LABEL, "")


# Each row's search text, kept with the row object it was built from: the live state
# hands out the same row objects until its host lists again, so a filter over 10,000
# cached rows builds the text once per listing instead of once per request. Keyed by
# id() and checked by identity (an id is reused only after its object is gone, and
# the entry holds the object, so it cannot be). Rows are never changed in place.
# The entries keep their rows alive: the cache is cleared whole when it holds a quarter
# more than the largest list filtered so far (the rest are old listings' rows), so it
# costs at most a quarter of a fleet's rows in memory and a rebuild now and then.
_HAY: dict[int, tuple[ContainerSummary, str, str]] = {}
_hay_limit = 5_000


def _haystack(c: ContainerSummary, host_name: str) -> str:
    """The text plain words are looked for in (ports apart: see :func:`_ports_text`)."""
    entry = _HAY.get(id(c))
    if entry is not None and entry[0] is c and entry[1] == host_name:
        return entry[2]
    source = c.host_id.partition(":")[0]
    hay = f"{c.name} {c.image} {host_name} {source} {c.state} {c.status} {project_of(c)}".lower()
    if len(_HAY) >= _hay_limit:
        _HAY.clear()
    _HAY[id(c)] = (c, host_name, hay)
    return hay


def _ports_text(c: ContainerSummary) -> str:
    # As the table shows them ("8080→80/tcp"), without the bind address: "0.0.0.0"
    # would match nearly every published port.
    return " ".join(
        f"{p.public}\u2192{p.private}/{p.type}" if p.public is not None else f"{p.private}/{p.type}"
        for p in c.ports
    ).lower()


def _matcher(flt: Filter, host_names: Mapping[str, str]) -> Callable[[ContainerSummary], bool]:
    where = flt.where
    states, projects = where.get("state"), where.get("project")
    hosts, names, ids = where.get("host"), where.get("name"), where.get("id")
    words = flt.words

    def ok(c: ContainerSummary) -> bool:
        if states is not None and c.state.lower() not in states:
            return False
        if projects is not None and project_of(c).lower() not in projects:
            return False
        host_name = host_names.get(c.host_id, "")
        if hosts is not None and not (c.host_id.lower() in hosts or host_name.lower() in hosts):
            return False
        if names is not None and c.name.lower() not in names:
            return False
        if ids is not None and not any(c.id.lower().startswith(i) for i in ids):
            return False
        if words:
            hay = _haystack(c, host_name)
            missing = [w for w in words if w not in hay]
            if not missing:
                return True
            # Ports only when the rest was not enough and every word left has a digit
            # (a port's text always does): their text costs as much as the rest.
            if not c.ports or not all(any(ch.isdigit() for ch in w) for w in missing):
                return False
            ports = _ports_text(c)
            return all(w in ports for w in missing)
        return True

    return ok


def filter_rows(
    rows: Iterable[ContainerSummary], flt: Filter, host_names: Mapping[str, str]
) -> list[ContainerSummary]:
    rows = rows if isinstance(rows, list) else list(rows)
    if not flt:
        return list(rows)
    global _hay_limit
    _hay_limit = max(_hay_limit, len(rows) + len(rows) // 4)
    return list(filter(_matcher(flt, host_names), rows))


def sort_rows(
    rows: Iterable[ContainerSummary],
    sort: str,
    order: str,
    host_names: Mapping[str, str],
    first: int | None = None,
) -> list[ContainerSummary]:
    """Sorted by ``sort`` (case-insensitively); ties broken by name, host id and
    container id, which together are unique, so the order is total (the same rows in
    any input order give the same list) and paging never repeats or skips a row.
    ``desc`` is the exact reverse of ``asc``. ``first``: only that many rows are
    needed (a page near the top): the same rows, found without sorting them all."""
    if sort not in SORT_KEYS or order not in ORDERS:
        raise ValueError(f"sort {sort!r} / order {order!r}")
    # Keys are flat tuples built by one small function each: with 10,000 rows the key
    # calls are most of the time a sort takes.
    key: Callable[[ContainerSummary], tuple[Any, ...]]
    if sort == "name":

        def key(c: ContainerSummary) -> tuple[Any, ...]:
            return (c.name.lower(), c.name, c.host_id, c.id)

    elif sort == "host":
        lower = {k: v.lower() for k, v in host_names.items()}

        def key(c: ContainerSummary) -> tuple[Any, ...]:
            host = c.host_id
            return (lower.get(host, ""), host, c.name.lower(), c.name, c.id)

    else:
        rank = _STATE_RANK.get
        last = len(STATE_ORDER)
        field_of: Callable[[ContainerSummary], Any] = {
            "image": lambda c: c.image.lower(),
            "state": lambda c: (rank(c.state, last), c.state),
            # ISO 8601 UTC in whole seconds compares as text; unknown sorts oldest.
            "created": lambda c: c.created or "",
            "status": lambda c: c.status.lower(),
        }[sort]

        def key(c: ContainerSummary) -> tuple[Any, ...]:
            return (field_of(c), c.name.lower(), c.name, c.host_id, c.id)

    rows = list(rows)
    if first is not None and first * 4 < len(rows):
        # Documented as equal to sorted(...)[:first], in O(n log first).
        pick = heapq.nlargest if order == "desc" else heapq.nsmallest
        return pick(first, rows, key=key)
    return sorted(rows, key=key, reverse=order == "desc")


@dataclass(frozen=True)
class Listing:
    """What a list request asks for. ``limit`` None: every match (the API's default)."""

    filter: Filter = field(default_factory=Filter)
    sort: str = "host"
    order: str = "asc"
    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True)
class Page:
    rows: list[ContainerSummary]
    total: int  # matches before paging
    offset: int
    limit: int | None
    listed: int  # rows before filtering: "no match" differs from "nothing there"


def run(
    containers: Sequence[ContainerSummary], listing: Listing, host_names: Mapping[str, str]
) -> Page:
    matched = filter_rows(containers, listing.filter, host_names)
    end = None if listing.limit is None else listing.offset + listing.limit
    ordered = sort_rows(matched, listing.sort, listing.order, host_names, first=end)
    return Page(
        ordered[listing.offset : end],
        len(matched),
        listing.offset,
        listing.limit,
        len(containers),
    )


# ---- request parameters ---------------------------------------------------------------


def _text(params: Mapping[str, str], name: str, bound: int) -> str:
    value = params.get(name, "") or ""
    if len(value) > bound:
        raise BadRequest(f"{name} is too long (at most {bound} characters)", field=name)
    return value


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name) or default
    if value not in choices:
        raise BadRequest(f"{name} must be one of: {', '.join(choices)}", field=name)
    return value


def _int(params: Mapping[str, str], name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        raise BadRequest(f"{name} must be a whole number from {lo} to {hi}", field=name)
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be a whole number from {lo} to {hi}", field=name)
    return value


FILTER_QUERY = (
    Param(
        "q",
        "Filter words, each matched in name, image, host, state, status, compose project "
        "or ports; `state=`, `project=`, `host=`, `name=`, `id=` words narrow exactly.",
    ),
    Param("project", "Only containers of this compose project."),
    Param("state", f"Only these states, comma-separated: {', '.join(STATE_ORDER)}."),
    Param("sort", "Sort by this column; ties by name, host and id.", enum=SORT_KEYS),
    Param("order", "Sort order (default asc).", enum=ORDERS),
)
LISTING_QUERY = (
    *FILTER_QUERY,
    Param("limit", f"At most this many containers, 1-{MAX_LIMIT} (default: all).", type="integer"),
    Param("offset", "Skip this many matches first (default 0).", type="integer"),
)
LISTING_PARAMS = tuple(p.name for p in LISTING_QUERY)


def parse_filter_params(params: Mapping[str, str]) -> Filter:
    """``q``, ``project`` and ``state`` of a query string; an unknown state is a 400
    (a control sends it), while ``state=bogus`` typed into ``q`` just matches nothing."""
    q = _text(params, "q", MAX_QUERY)
    project = _text(params, "project", MAX_VALUE)
    state = _text(params, "state", MAX_VALUE)
    states = [s for s in state.lower().split(",") if s]
    unknown = [s for s in states if s not in _STATE_RANK]
    if unknown:
        raise BadRequest(f"state must be one of: {', '.join(STATE_ORDER)}", field="state")
    return parse_filter(q, project=[project] if project else [], state=states)


def parse_api_params(params: Mapping[str, str]) -> Listing | None:
    """The listing ``GET /api/containers`` asks for, or None when it names none of
    :data:`LISTING_PARAMS` (then the answer is exactly what it was before they existed)."""
    if not any(name in params for name in LISTING_PARAMS):
        return None
    return Listing(
        filter=parse_filter_params(params),
        sort=_choice(params, "sort", SORT_KEYS, "host"),
        order=_choice(params, "order", ORDERS, "asc"),
        offset=_int(params, "offset", 0, 0, 10**9) or 0,
        limit=_int(params, "limit", None, 1, MAX_LIMIT),
    )


@dataclass(frozen=True)
class UiListing:
    """A list partial's request: the listing plus the page the pager shows."""

    listing: Listing
    page: int
    size: int


def parse_ui_params(params: Mapping[str, str], default_sort: str) -> UiListing:
    """``page`` is 1-based; a page past the end is clamped to the last one by
    :func:`clamp_page` (rows may have gone since the link was made), anything that is
    not a page number is a 400, as are an unknown sort, order or state."""
    size = _int(params, "size", UI_PAGE_SIZE, 1, MAX_LIMIT) or UI_PAGE_SIZE
    page = _int(params, "page", 1, 1, 10**6) or 1
    listing = Listing(
        filter=parse_filter_params(params),
        sort=_choice(params, "sort", SORT_KEYS, default_sort),
        order=_choice(params, "order", ORDERS, "asc"),
    )
    return UiListing(listing, page, size)


def pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


def clamp_page(page: int, total: int, size: int) -> int:
    return min(max(1, page), pages(total, size))


def run_ui(
    containers: Sequence[ContainerSummary], ui: UiListing, host_names: Mapping[str, str]
) -> tuple[Page, int]:
    """One page of a list partial and its (clamped) page number."""
    listing = ui.listing
    matched = filter_rows(containers, listing.filter, host_names)
    page = clamp_page(ui.page, len(matched), ui.size)
    offset = (page - 1) * ui.size
    ordered = sort_rows(matched, listing.sort, listing.order, host_names, first=offset + ui.size)
    return (
        Page(ordered[offset : offset + ui.size], len(matched), offset, ui.size, len(containers)),
        page,
    )
