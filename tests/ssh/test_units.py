"""Pure logic: command building (injection-proof) and parsing docker CLI output."""

from __future__ import annotations

import json
import shlex

import pytest
from archnest import REF_PATTERN, BadRequest, summary_from_engine_list
from archnest_docker_ssh import commands
from archnest_docker_ssh.parse import (
    merge_logs,
    parse_labels,
    parse_ports,
    parse_ps,
    parse_size,
    parse_stats,
)
from hypothesis import given, settings
from hypothesis import strategies as st

REFS = st.one_of(st.text(), st.from_regex(REF_PATTERN, fullmatch=True))


def builders(ref: str):
    yield commands.inspect(False, ref), ["inspect", "--type", "container", "--", ref]
    yield commands.action(True, ref, "remove", force=True), ["rm", "--force", "--", ref]
    yield (
        commands.logs(False, ref, tail=5, since=None),
        ["logs", "--timestamps", "--tail", "5", "--", ref],
    )


@settings(max_examples=500)
@given(REFS)
def test_any_ref_is_refused_or_is_exactly_one_argument(ref: str) -> None:
    if not REF_PATTERN.fullmatch(ref):
        for build in (commands.inspect, commands.stats, commands.container_id):
            with pytest.raises(BadRequest):
                build(False, ref)
        with pytest.raises(BadRequest):
            commands.action(False, ref, "stop")
        with pytest.raises(BadRequest):
            commands.exec_tty(False, ref, "/bin/sh", "0" * 32)
        return
    for line, expected in builders(ref):
        words = shlex.split(line)
        if words[0] == "sudo":
            assert words[:2] == ["sudo", "-n"]
            words = words[2:]
        assert words == ["docker", *expected]


def test_verbs_and_shells_are_a_fixed_set() -> None:
    with pytest.raises(ValueError):
        commands._line(False, "run", "x")
    with pytest.raises(ValueError):
        commands.exec_tty(False, "box", "/bin/sh; reboot", "0" * 32)
    with pytest.raises(ValueError):
        commands.exec_kill(False, "box", "not-a-tag")
    with pytest.raises(BadRequest):
        commands.action(False, "box", "rm -rf")
    assert shlex.split(commands.ps(True, all=True)) == [
        "sudo",
        "-n",
        "docker",
        "ps",
        "--all",
        "--no-trunc",
        "--format",
        "{{json .}}",
    ]


def test_exec_command_requests_a_tty_and_tags_the_session() -> None:
    words = shlex.split(commands.exec_tty(False, "box", "/bin/sh", "ab" * 16))
    assert words == [
        "docker",
        "exec",
        "--interactive",
        "--tty",
        "--env",
        "ARCHNEST_EXEC_ID=" + "ab" * 16,
        "--",
        "box",
        "/bin/sh",
    ]


# `docker ps --format '{{json .}}'` as printed by a 20.10 CLI (no State, labels as a
# comma string) and by a current CLI (State present).
PS_20_10 = {
    "Command": '"sleep 3600"',
    "CreatedAt": "2024-03-01 10:20:30 +0100 CET",
    "ID": "a" * 64,
    "Image": "busybox",
    "Labels": "com.example.list=a,b,c,owner=ops",
    "Names": "web",
    "Ports": "0.0.0.0:8080->80/tcp, :::8080->80/tcp, 443/tcp",
    "Status": "Up 2 minutes (Paused)",
}
PS_CURRENT = {**PS_20_10, "State": "running", "Status": "Up 3 seconds (healthy)", "Labels": ""}


def test_ps_20_10_and_current() -> None:
    out = "\n".join(json.dumps(x) for x in (PS_20_10, PS_CURRENT)).encode() + b"\nnot json\n"
    old, new = parse_ps(out, "ssh:1")
    assert old.state == "paused" and new.state == "running"
    # Docker's status phrase without its duration, as every source gives it.
    assert (old.status, new.status) == ("Up (Paused)", "Up (healthy)")
    assert old.created == "2024-03-01T09:20:30Z"
    assert old.labels == {"com.example.list": "a,b,c", "owner": "ops"}
    assert new.labels == {}
    assert [(p.private, p.public, p.ip) for p in old.ports] == [
        (80, 8080, "0.0.0.0"),
        (80, 8080, "::"),
        (443, None, None),
    ]


@pytest.mark.parametrize(
    ("status", "state", "shown"),
    [
        ("Exited (137) 5 minutes ago", "exited", "Exited (137)"),
        ("Created", "created", "Created"),
        ("Restarting (1) 2 seconds ago", "restarting", "Restarting (1)"),
        ("Removal In Progress", "removing", "Removal In Progress"),
        ("Dead", "dead", "Dead"),
        ("Up 1 second", "running", "Up"),
        ("Up About a minute (health: starting)", "running", "Up (health: starting)"),
    ],
)
def test_state_derived_from_status_when_missing(status: str, state: str, shown: str) -> None:
    line = json.dumps({**PS_20_10, "Status": status}).encode()
    (row,) = parse_ps(line, "ssh:1")
    assert (row.state, row.status) == (state, shown)


def test_labels_dict_and_port_ranges() -> None:
    assert parse_labels({"a": 1}) == {"a": "1"}
    ports = parse_ports("127.0.0.1:9000-9001->9000-9001/udp")
    assert ports == [
        {"PrivatePort": 9000, "PublicPort": 9000, "Type": "udp", "IP": "127.0.0.1"},
        {"PrivatePort": 9001, "PublicPort": 9001, "Type": "udp", "IP": "127.0.0.1"},
    ]


def test_ps_line_equals_the_engine_row_it_was_printed_from() -> None:
    """What the docker CLI prints for an Engine list row normalises to that row's model."""
    engine_row = {
        "Id": "b" * 64,
        "Names": ["/api"],
        "Image": "busybox",
        "State": "running",
        "Status": "Up 7 minutes (unhealthy)",
        "Created": 1709284830,
        "Ports": [
            {"PrivatePort": 443, "Type": "tcp"},
            {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "::"},
            {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
        ],
        "Labels": {"team": "ops", "tier": "web"},
    }
    ps_line = {
        "ID": "b" * 64,
        "Names": "api",
        "Image": "busybox",
        "State": "running",
        "Status": "Up 7 minutes (unhealthy)",
        "CreatedAt": "2024-03-01 10:20:30 +0100 CET",
        "Ports": "0.0.0.0:8080->80/tcp, :::8080->80/tcp, 443/tcp",
        "Labels": "team=ops,tier=web",
    }
    (from_cli,) = parse_ps(json.dumps(ps_line).encode(), "ssh:1")
    assert from_cli == summary_from_engine_list(engine_row, "ssh:1")
    assert from_cli.status == "Up (unhealthy)" and from_cli.created == "2024-03-01T09:20:30Z"
    assert [(p.private, p.public, p.ip) for p in from_cli.ports] == [
        (80, 8080, "0.0.0.0"),
        (80, 8080, "::"),
        (443, None, None),
    ]


def test_stats_human_units() -> None:
    line = json.dumps(
        {
            "BlockIO": "4.1MB / 0B",
            "CPUPerc": "12.50%",
            "MemUsage": "1.785MiB / 23.54GiB",
            "NetIO": "1.2kB / 648B",
            "PIDs": "3",
        }
    )
    s = parse_stats(line)
    assert s is not None
    assert s.cpu_percent == 12.5 and s.pids == 3
    assert s.mem_usage_bytes == round(1.785 * 1024**2)
    assert s.mem_limit_bytes == round(23.54 * 1024**3)
    assert (s.net_rx_bytes, s.net_tx_bytes) == (1200, 648)
    assert (s.block_read_bytes, s.block_write_bytes) == (4_100_000, 0)
    assert parse_size("--") is None and parse_stats("nope") is None


def test_logs_merge_streams_by_timestamp() -> None:
    out = b"2024-01-01T00:00:00.000000001Z one\n2024-01-01T00:00:00.000000003Z three\n"
    err = b"2024-01-01T00:00:00.000000002Z two\n"
    lines = merge_logs(out, err, timestamps=False)
    assert [(ln.stream, ln.text, ln.ts) for ln in lines] == [
        ("stdout", "one", None),
        ("stderr", "two", None),
        ("stdout", "three", None),
    ]
    assert merge_logs(out, b"", timestamps=True)[0].ts == "2024-01-01T00:00:00Z"


# Log options as anything a caller could pass: ints in and out of range, floats, text
# (dates, shell syntax), None. A built command holds each time as its own word of digits.
TIMES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**41), max_value=2**41),
    st.floats(allow_nan=True),
    st.text(),
    st.booleans(),
)


@settings(max_examples=500)
@given(
    ref=st.from_regex(REF_PATTERN, fullmatch=True),
    tail=st.one_of(st.none(), st.integers(min_value=0, max_value=10**7)),
    since=TIMES,
    until=TIMES,
    follow=st.booleans(),
)
def test_log_options_are_refused_or_digits_in_their_own_word(
    ref: str, tail: int | None, since: object, until: object, follow: bool
) -> None:
    def valid(v: object) -> bool:
        return v is None or (type(v) is int and 0 <= v < 2**40)

    try:
        line = commands.logs(
            True,
            ref,
            tail=tail,
            since=since,
            until=until,
            follow=follow,  # type: ignore[arg-type]
        )
    except ValueError:
        assert not (valid(since) and valid(until))
        return
    assert valid(since) and valid(until)
    expected = ["sudo", "-n", "docker", "logs", "--timestamps"]
    if tail is not None:
        expected += ["--tail", str(tail)]
    if since is not None:
        expected += ["--since", str(since)]
    if until is not None:
        expected += ["--until", str(until)]
    expected += ["--follow"] if follow else []
    assert shlex.split(line) == [*expected, "--", ref]
