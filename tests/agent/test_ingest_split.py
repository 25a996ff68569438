"""The ingest's split validation and its per-host container cache.

A report is checked as top-level fields plus one document per container, and a
container whose bytes the host already sent is reused instead of validated and
normalised again. These tests hold that path to the whole-report schema (the same
verdicts, the same stored containers) and check what the cache may and may not do.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from archnest import ContainerDetail, ContainerSummary
from archnest_docker_agent.normalise import (
    ContainerCache,
    EnvMasker,
    normalise_report,
    with_stats,
)
from archnest_docker_agent.payload import STATS_FIELDS, ReportInvalid, parse_report, split_report
from archnest_docker_agent.routes import CACHE_KEY, report_row
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import post_report
from .payloads import make_report

HOST = "split-host"


def _body(report: dict[str, Any]) -> bytes:
    return json.dumps(report).encode()


def _whole(body: bytes) -> list[ContainerDetail] | str:
    """The reference: the whole report through the documented model, normalised."""
    try:
        report = parse_report(body)
    except ReportInvalid as exc:
        return f"400: {exc}"
    return [ContainerDetail(**c) for c in normalise_report(report, f"agent:{report.host}")]


def _split(body: bytes, cache: ContainerCache) -> list[ContainerDetail] | str:
    try:
        row, summaries = report_row(body, cache)
    except ReportInvalid as exc:
        return f"400: {exc}"
    details = [ContainerDetail(**c) for c in with_stats(row["containers_json"], row["stats_json"])]
    # The list rows handed back are the stored details' summary fields.
    assert summaries == [ContainerSummary(**d.model_dump()) for d in details]
    assert row["container_count"] == len(details)
    assert row["running_count"] == sum(d.state == "running" for d in details)
    return details


# --- the split path against the whole-report model --------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


BASE = make_report(HOST, 3)
PATHS = _paths(BASE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(PATHS), st.one_of(st.just("<delete>"), _json)), max_size=3
    )
)
def test_split_path_agrees_with_the_whole_model(edits: list[tuple[tuple, Any]]) -> None:
    """Random values at random places (or keys removed): the split path accepts exactly
    the bodies the whole-report model accepts, and stores the same containers. A warm
    cache (the base report seen before) answers as a cold one."""
    report = copy.deepcopy(BASE)
    for path, value in edits:
        if not path:
            report = value if value != "<delete>" else {}
            continue
        parent: Any = report
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value == "<delete>":
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this place
    body = _body(report)
    expected = _whole(body)
    cold = _split(body, ContainerCache())
    warm_cache = ContainerCache()
    _split(_body(BASE), warm_cache)
    warm = _split(body, warm_cache)
    if isinstance(expected, str):
        assert isinstance(cold, str) and isinstance(warm, str), (expected, cold)
    else:
        assert cold == expected and warm == expected


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"[]", "schema 1"),
        (b'"report"', "schema 1"),
        (b"{not json", "malformed JSON"),
        (b"", "malformed JSON"),
        # NaN is not JSON (the agent's jq never writes it); refused like any malformed body.
        (b'{"schema": 1, "engine": {"x": NaN}}', "malformed JSON"),
        (_body({**make_report(HOST, 1), "containers": {"a": 1}}), "containers"),
        (_body({**make_report(HOST, 1), "containers": None}), "containers"),
        (_body({k: v for k, v in make_report(HOST, 1).items() if k != "containers"}), "containers"),
        (
            _body(
                {**make_report(HOST, 2), "containers": [make_report(HOST, 1)["containers"][0], 7]}
            ),
            "containers.1",
        ),
        (_body({**make_report(HOST, 1), "stats": {"x": {"pids": -1}}}), "stats.x.pids"),
    ],
)
def test_refusals_name_the_place(body: bytes, needle: str) -> None:
    with pytest.raises(ReportInvalid) as info:
        report_row(body, ContainerCache())
    assert needle in str(info.value)


def test_too_many_containers_is_refused_before_any_is_validated() -> None:
    report = make_report(HOST, 1)
    report["containers"] = [{"Id": "0" * 64}] * 10_001
    cache = ContainerCache()
    with pytest.raises(ReportInvalid, match="at most 10000"):
        report_row(_body(report), cache)
    assert cache.misses == 0


# --- the cache ----------------------------------------------------------------------


def test_unchanged_containers_are_reused_and_changed_ones_validated_again() -> None:
    cache = ContainerCache()
    first = make_report(HOST, 10)
    row1, summaries1 = report_row(_body(first), cache)
    assert (cache.hits, cache.misses) == (0, 10)
    second = copy.deepcopy(first)
    # One container stopped; the stats of another moved; the order of two changed.
    second["containers"][3]["State"].update(Status="exited", Running=False, ExitCode=137)
    cid = second["containers"][0]["Id"]
    second["stats"][cid] = {**second["stats"][cid], "cpu_percent": 99.5}
    second["containers"][5], second["containers"][6] = (
        second["containers"][6],
        second["containers"][5],
    )
    row2, summaries2 = report_row(_body(second), cache)
    assert (cache.hits, cache.misses) == (9, 11)
    stored = {c["id"]: c for c in with_stats(row2["containers_json"], row2["stats_json"])}
    assert stored[second["containers"][3]["Id"]]["state"] == "exited"
    assert stored[cid]["stats"]["cpu_percent"] == 99.5
    assert row2["running_count"] == row1["running_count"] - 1
    # Unchanged containers hand back the very same list rows (cheap to publish).
    assert summaries2[0] is summaries1[0]
    assert [s.id for s in summaries2] == [c["Id"] for c in second["containers"]]


def test_same_bytes_on_two_hosts_stay_each_hosts_own() -> None:
    cache = ContainerCache()
    a, b = make_report("host-a", 3), make_report("host-b", 3)
    b["containers"] = a["containers"]  # byte-identical inspect documents
    b["stats"] = a["stats"]
    rows = [report_row(_body(r), cache)[0] for r in (a, b)]
    for row, host in zip(rows, ("host-a", "host-b"), strict=True):
        assert {c["host_id"] for c in json.loads(row["containers_json"])} == {f"agent:{host}"}
    assert cache.misses == 6


def test_a_refused_report_leaves_the_cache_as_it_was() -> None:
    cache = ContainerCache()
    good = make_report(HOST, 4)
    report_row(_body(good), cache)
    bad = copy.deepcopy(good)
    bad["containers"][2]["Id"] = "not-hex"
    with pytest.raises(ReportInvalid, match=r"containers\.2\.Id"):
        report_row(_body(bad), cache)
    hits = cache.hits
    report_row(_body(good), cache)
    assert cache.hits == hits + 4  # still the good report's entries


def test_env_is_masked_on_a_miss_and_stays_masked_on_hits() -> None:
    report = make_report(HOST, 1)
    report["containers"][0]["Config"]["Env"] = ["API_TOKEN=raw-secret", "OK=1"]
    cache = ContainerCache(EnvMasker())
    for _ in range(2):
        row, _ = report_row(_body(report), cache)
        assert "raw-secret" not in row["containers_json"]
    assert cache.hits == 1


def test_memory_is_bounded_by_dropping_the_hosts_that_reported_longest_ago() -> None:
    cache = ContainerCache(max_entries=25)
    for host in ("h1", "h2", "h3"):
        report_row(_body(make_report(host, 10)), cache)
    assert cache._size <= 25 and list(cache._hosts) == ["h2", "h3"]
    report_row(_body(make_report("h2", 10)), cache)  # h2 reported last now
    report_row(_body(make_report("h1", 10)), cache)
    assert list(cache._hosts) == ["h2", "h1"]
    cache.forget("h2")
    assert cache._size == 10 and list(cache._hosts) == ["h1"]


# --- through the app ----------------------------------------------------------------


async def test_reports_through_the_app_use_the_cache_and_forget_clears_it(
    archnest_client: TestClient, viewer_headers, admin_headers
) -> None:
    cache = archnest_client.app[CACHE_KEY]
    report = make_report(HOST, 20)
    for _ in range(3):
        assert (await post_report(archnest_client, report)).status == 204
    assert cache.misses == 20 and cache.hits == 40
    changed = copy.deepcopy(report)
    changed["containers"][0]["Name"] = "/renamed"
    assert (await post_report(archnest_client, changed)).status == 204
    base = f"/api/agents/docker/hosts/{HOST}"
    detail = await archnest_client.get(base + "/containers/renamed", headers=viewer_headers)
    assert detail.status == 200 and (await detail.json())["host_id"] == f"agent:{HOST}"
    hosts = await (
        await archnest_client.get("/api/agents/docker/hosts", headers=viewer_headers)
    ).json()
    assert hosts[0]["report_count"] == 4 and hosts[0]["container_count"] == 20
    assert (await archnest_client.delete(base, headers=admin_headers)).status == 204
    assert HOST not in cache._hosts


def test_what_is_stored_and_what_is_announced_follow_what_changed() -> None:
    cache = ContainerCache()
    report = make_report(HOST, 4)
    first, _ = report_row(_body(report), cache)
    assert first["containers_changed"] and first["shown_changed"]
    # Only the samples moved: nothing to store again, nothing to announce.
    cid = report["containers"][0]["Id"]
    report["stats"][cid] = {**report["stats"][cid], "cpu_percent": 42.0}
    row, _ = report_row(_body(report), cache)
    assert not row["containers_changed"] and not row["shown_changed"]
    assert row["containers_json"] is first["containers_json"]
    # A restart the list shows alike: stored again, not announced.
    report["containers"][1]["RestartCount"] = 5
    row, _ = report_row(_body(report), cache)
    assert row["containers_changed"] and not row["shown_changed"]
    # A container paused: both.
    report["containers"][2]["State"].update(Status="paused", Paused=True)
    row, _ = report_row(_body(report), cache)
    assert row["containers_changed"] and row["shown_changed"]
    # One gone: both.
    report["containers"].pop()
    row, _ = report_row(_body(report), cache)
    assert row["containers_changed"] and row["shown_changed"]


_SAMPLE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1.5", "7", "", "x", 5.0, [], {}]),
)


@settings(max_examples=300, deadline=None)
@given(
    samples=st.dictionaries(
        st.text(max_size=600).filter(lambda k: len(k) <= 3 or len(k) > 500),
        st.one_of(
            st.none(),
            st.dictionaries(st.sampled_from([*STATS_FIELDS, "extra"]), _SAMPLE_VALUES, max_size=4),
        ),
        max_size=3,
    )
)
def test_stats_samples_read_as_the_model_reads_them(samples: dict[str, Any]) -> None:
    """The samples' fast path (msgspec) accepts only what the model accepts, gives the
    same values, and leaves refusals and their messages to the model."""
    body = _body({**make_report(HOST, 1), "stats": samples})
    try:
        expected: Any = parse_report(body).stats
    except ReportInvalid as exc:
        expected = f"400: {exc}"
    try:
        got: Any = split_report(body).header.stats
    except ReportInvalid as exc:
        got = f"400: {exc}"
    assert got == expected
    if isinstance(got, dict):
        assert all(type(v) is type(expected[k][f]) for k, s in got.items() for f, v in s.items())


# --- reading a body with the host's previous containers as a guide ----------------


def _same_reading(body: bytes, previous: list[bytes]) -> Any:
    """split_report with and without the guide: the same result or the same refusal."""
    try:
        plain: Any = split_report(body)
        plain = (plain.header.model_dump(), [bytes(r) for r in plain.containers])
    except ReportInvalid as exc:
        plain = f"400: {exc}"
    try:
        guided: Any = split_report(body, previous)
        guided = (guided.header.model_dump(), [bytes(r) for r in guided.containers])
    except ReportInvalid as exc:
        guided = f"400: {exc}"
    assert guided == plain
    return plain


def test_a_guided_reading_equals_a_whole_one() -> None:
    base = make_report(HOST, 8)
    previous = [json.dumps(c, separators=(",", ":")).encode() for c in base["containers"]]
    compact = json.dumps(base, separators=(",", ":")).encode()
    assert all(a is b for a, b in zip(split_report(compact, previous).containers, previous))
    bodies: list[bytes] = [compact, _body(base)]  # json.dumps's ", " spacing too
    for edit in range(6):
        r = copy.deepcopy(base)
        cs = r["containers"]
        if edit == 0:
            cs[3]["RestartCount"] = 7  # one changed in the middle
        elif edit == 1:
            cs[-1]["RestartCount"] = 7  # the last one changed
        elif edit == 2:
            cs.insert(2, copy.deepcopy(cs[5]) | {"Id": "e" * 64})  # one added
        elif edit == 3:
            del cs[4]  # one removed
        elif edit == 4:
            cs[0]["RestartCount"], cs[1]["RestartCount"] = 3, 4  # the first two changed
        else:
            r["containers"] = []
        bodies.append(json.dumps(r, separators=(",", ":")).encode())
    for body in bodies:
        _same_reading(body, previous)


def test_previous_containers_elsewhere_in_a_body_are_not_taken_for_its_own() -> None:
    base = make_report(HOST, 3)
    array = json.dumps(base["containers"], separators=(",", ":"))
    previous = [json.dumps(c, separators=(",", ":")).encode() for c in base["containers"]]
    empty = {**base, "containers": []}
    head = json.dumps(empty, separators=(",", ":"))[:-1]
    crafted = [
        # The previous array in an unknown member; the body's own containers are none.
        head + ',"junk":{"containers":' + array + "}}",
        # In a string (quotes escaped), and as a key's value inside an object.
        head + ',"junk":' + json.dumps('"containers":' + array) + "}",
        head + ',"x\\"containers":' + array + "}",
        # Two top-level "containers": the last one is the body's.
        '{"containers":' + array + "," + head[1:] + "}",
    ]
    for text in crafted:
        result = _same_reading(text.encode(), previous)
        assert isinstance(result, str) or result[1] == [], text[:80]
    # ...and the other way round: the previous array last is the body's.
    last = head + ',"containers":' + array + "}"
    assert _same_reading(last.encode(), previous)[1] == previous
