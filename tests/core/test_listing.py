"""core/listing.py: the filter, sort and paging of container lists (pure functions)."""

from __future__ import annotations

import hashlib
import random

import pytest
from archnest.containers import ContainerSummary, Port
from archnest.errors import BadRequest
from archnest.listing import (
    MAX_LIMIT,
    ORDERS,
    SORT_KEYS,
    STATE_ORDER,
    Listing,
    clamp_page,
    filter_rows,
    pages,
    parse_api_params,
    parse_filter,
    parse_ui_params,
    run,
    run_ui,
    sort_rows,
)
from hypothesis import given, settings
from hypothesis import strategies as st

HOSTS = {"docker:1": "Alpha", "ssh:2": "beta", "agent:edge": "Edge box"}


def _c(name: str, host: str = "docker:1", **kw) -> ContainerSummary:  # type: ignore[no-untyped-def]
    kw.setdefault("id", hashlib.sha256(f"{host}/{name}".encode()).hexdigest())
    kw.setdefault("image", "busybox:1")
    kw.setdefault("state", "running")
    return ContainerSummary(name=name, host_id=host, **kw)


ROWS = [
    _c(
        "web-1",
        state="running",
        status="Up 2 hours",
        labels={"com.docker.compose.project": "shop"},
        ports=[Port(private=80, public=8080, ip="0.0.0.0")],
        created="2026-01-02T00:00:00Z",
    ),
    _c("db", "ssh:2", image="postgres:16", state="exited", status="Exited (0) 1 hour ago"),
    _c("Worker", "ssh:2", state="paused", labels={"com.docker.compose.project": "Shop"}),
    _c("cron", "agent:edge", image="alpine", state="created", created="2025-05-05T00:00:00Z"),
]


def _names(rows: list[ContainerSummary]) -> list[str]:
    return [c.name for c in rows]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("", ["web-1", "db", "Worker", "cron"]),
        ("WEB", ["web-1"]),
        ("postgres", ["db"]),  # image
        ("beta", ["db", "Worker"]),  # host name
        ("edge box", ["cron"]),  # every word, here both of the host's name
        ("ssh", ["db", "Worker"]),  # source
        ("exited", ["db"]),  # state
        ("hour", ["web-1", "db"]),  # status
        ("shop", ["web-1", "Worker"]),  # compose project, any case
        ("8080", ["web-1"]),  # ports
        ("state=paused", ["Worker"]),
        ("state=paused,exited", ["db", "Worker"]),
        ("project=shop", ["web-1", "Worker"]),
        ("project=shop state=running", ["web-1"]),
        ("host=beta", ["db", "Worker"]),
        ("host=docker:1", ["web-1"]),
        ("name=db", ["db"]),
        ("name=d", []),  # exact, not a substring
        ("state=bogus", []),  # typed, not an error
        ("colour=red", []),  # an unknown key is a plain word
        ("beta worker", ["Worker"]),
    ],
)
def test_filter(q: str, expected: list[str]) -> None:
    assert _names(filter_rows(ROWS, parse_filter(q), HOSTS)) == expected


def test_filter_by_id_prefix_and_given_apart() -> None:
    prefix = ROWS[1].id[:12]
    assert _names(filter_rows(ROWS, parse_filter(f"id={prefix}"), HOSTS)) == ["db"]
    # A value given apart (the ?project= of a link) and the same key in q must both hold.
    both = parse_filter("project=shop", project=["other"])
    assert filter_rows(ROWS, both, HOSTS) == []
    assert _names(filter_rows(ROWS, parse_filter("", state=["exited"]), HOSTS)) == ["db"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["cron", "db", "web-1", "Worker"]),
        ("host", ["web-1", "db", "Worker", "cron"]),  # Alpha, beta, Edge box
        ("image", ["cron", "web-1", "Worker", "db"]),
        ("state", ["web-1", "Worker", "cron", "db"]),  # running, paused, created, exited
        ("created", ["db", "Worker", "cron", "web-1"]),  # unknown first
        ("status", ["cron", "Worker", "db", "web-1"]),
    ],
)
def test_sort(sort: str, expected: list[str]) -> None:
    assert _names(sort_rows(ROWS, sort, "asc", HOSTS)) == expected
    assert _names(sort_rows(ROWS, sort, "desc", HOSTS)) == expected[::-1]


def test_state_order_covers_the_model_states() -> None:
    from archnest.containers import STATES

    assert set(STATES) <= set(STATE_ORDER)


def test_run_pages_and_counts() -> None:
    page = run(ROWS, Listing(parse_filter("ssh"), "name", "asc", offset=1, limit=5), HOSTS)
    assert _names(page.rows) == ["Worker"] and page.total == 2 and page.listed == 4
    page = run(ROWS, Listing(limit=2), HOSTS)
    assert _names(page.rows) == ["web-1", "db"] and page.total == 4


def test_ui_page_is_clamped_to_the_last() -> None:
    ui = parse_ui_params({"page": "9", "size": "3"}, default_sort="name")
    page, number = run_ui(ROWS, ui, HOSTS)
    assert number == 2 and _names(page.rows) == ["Worker"] and page.offset == 3
    page, number = run_ui([], ui, HOSTS)
    assert number == 1 and page.rows == [] and page.total == 0
    assert pages(0, 100) == 1 and pages(100, 100) == 1 and pages(101, 100) == 2
    assert clamp_page(0, 10, 5) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "size"}, "sort"),
        ({"order": "up"}, "order"),
        ({"limit": "0"}, "limit"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1e3"}, "offset"),
        ({"state": "running,sleepy"}, "state"),
        ({"q": "x" * 501}, "q"),
        ({"project": "p" * 201}, "project"),
    ],
)
def test_bad_api_params_name_the_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_api_params(params)
    assert info.value.field == field and field in info.value.message


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page": "0"}, "page"), ({"page": "x"}, "page"), ({"size": "501"}, "size")],
)
def test_bad_ui_params_name_the_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_ui_params(params, default_sort="name")
    assert info.value.field == field


def test_api_params_absent_means_no_listing() -> None:
    assert parse_api_params({"all": "1", "host": "docker:1"}) is None
    listing = parse_api_params({"q": ""})
    assert listing is not None and listing.sort == "host" and listing.limit is None


# ---- properties ---------------------------------------------------------------------

_names_st = st.text(alphabet="abcAB-_1é ", min_size=1, max_size=6)
_row = st.builds(
    lambda name, host, image, state, status, created: (name, host, image, state, status, created),
    _names_st,
    st.sampled_from([*sorted(HOSTS), "docker:9"]),  # one host the listing does not name
    st.sampled_from(["a", "B", "busybox:1", ""]),
    st.sampled_from([*STATE_ORDER, "weird"]),
    st.sampled_from(["", "Up", "up 1", "Exited"]),
    st.one_of(st.none(), st.sampled_from(["2026-01-01T00:00:00Z", "2025-01-01T00:00:00Z"])),
)


def _rows(raw: list[tuple]) -> list[ContainerSummary]:
    # Ids are unique per host, as on a real engine.
    return [
        ContainerSummary(
            id=f"{i:064x}",
            name=name,
            host_id=host,
            image=image,
            state=state,
            status=status,
            created=created,
        )
        for i, (name, host, image, state, status, created) in enumerate(raw)
    ]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_row, max_size=40),
    st.sampled_from(SORT_KEYS),
    st.sampled_from(ORDERS),
    st.integers(1, 7),
    st.randoms(use_true_random=False),
)
def test_paging_covers_every_row_once_and_sort_is_total(
    raw: list[tuple], sort: str, order: str, size: int, rnd: random.Random
) -> None:
    rows = _rows(raw)
    ordered = sort_rows(rows, sort, order, HOSTS)
    # Total: any input order gives the same list.
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    assert sort_rows(shuffled, sort, order, HOSTS) == ordered
    # Paging with the API's offset/limit and with the UI's pages: every row exactly once.
    seen: list[str] = []
    for offset in range(0, len(rows) + size, size):
        page = run(shuffled, Listing(sort=sort, order=order, offset=offset, limit=size), HOSTS)
        assert page.total == len(rows)
        seen += [c.id for c in page.rows]
    assert seen == [c.id for c in ordered]
    ui_seen: list[str] = []
    for number in range(1, pages(len(rows), size) + 1):
        ui = parse_ui_params(
            {"sort": sort, "order": order, "page": str(number), "size": str(size)}, "host"
        )
        page, at = run_ui(shuffled, ui, HOSTS)
        assert at == number
        ui_seen += [c.id for c in page.rows]
    assert ui_seen == seen


@settings(max_examples=100, deadline=None)
@given(st.lists(_row, max_size=30), st.text(alphabet="abAB1 =-,", max_size=12))
def test_filter_keeps_order_and_only_drops_rows(raw: list[tuple], q: str) -> None:
    rows = _rows(raw)
    kept = filter_rows(rows, parse_filter(q), HOSTS)
    assert [c.id for c in kept] == [c.id for c in rows if c in kept]
    words = [w for w in q.lower().split() if "=" not in w]
    for c in kept:
        hay = " ".join((c.name, c.image, HOSTS.get(c.host_id, ""), c.state, c.status)).lower()
        hay += " " + c.host_id.partition(":")[0]
        assert all(w in hay for w in words)


def test_search_text_kept_per_row_follows_a_renamed_host_and_a_new_listing() -> None:
    """The search text is kept with the row object: the same object under a renamed
    host and a new object for the same container (the host listed again) are both
    matched on what they are now, not on what was kept."""
    row = _c("keeper", image="nginx:1")
    before = {"docker:1": "old-name"}
    assert filter_rows([row], parse_filter("old-name"), before) == [row]
    after = {"docker:1": "new-name"}
    assert filter_rows([row], parse_filter("old-name"), after) == []
    assert filter_rows([row], parse_filter("new-name"), after) == [row]
    relisted = row.model_copy(update={"image": "redis:7"})
    assert filter_rows([relisted], parse_filter("nginx"), after) == []
    assert filter_rows([relisted], parse_filter("redis"), after) == [relisted]
