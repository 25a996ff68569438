"""Pure normalisation logic shared by the sources."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from archnest import (
    BadRequest,
    ContainerDetail,
    ContainerSummary,
    detail_dict_from_inspect,
    detail_from_inspect,
    iso_utc,
    normalise_state,
    ports_from_inspect,
    stats_from_engine,
    summary_from_engine_list,
    validate_ref,
)
from archnest.normalise import status_from_list, status_from_state


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("running", "running"),
        ("Up 3 minutes", "running"),
        ("Up 2 hours (Paused)", "paused"),
        ("Exited (137) 5 seconds ago", "exited"),
        ("created", "created"),
        ("Restarting (1) 2s ago", "restarting"),
        ("DEAD", "dead"),
        ("Created", "created"),
        ("Removal In Progress", "removing"),
        ("Up Less than a second (health: starting)", "running"),
    ],
)
def test_normalise_state(raw, want):
    assert normalise_state(raw) == want


def test_iso_utc_is_whole_seconds_in_every_input_format():
    # One instant through each form a source meets: inspect's nanoseconds, an offset,
    # the CLI's local time, the Engine list's unix seconds, a database datetime.
    same = [
        "2024-05-06T07:08:09.987654321Z",
        "2024-05-06T09:08:09.5+02:00",
        "2024-05-06 09:08:09 +0200 CEST",
        1714979289,
        1714979289.9,
        datetime(2024, 5, 6, 7, 8, 9, 999999),
        datetime(2024, 5, 6, 8, 8, 9, 1, tzinfo=timezone(timedelta(hours=1))),
    ]
    assert {iso_utc(v) for v in same} == {"2024-05-06T07:08:09Z"}
    assert iso_utc(0) is None and iso_utc("0001-01-01T00:00:00Z") is None
    assert iso_utc("") is None and iso_utc(None) is None
    assert iso_utc("not a time") == "not a time"


def test_iso_utc_fraction_for_log_lines():
    assert iso_utc("2024-05-06T07:08:09.123456789Z", fraction=True) == (
        "2024-05-06T07:08:09.123456Z"
    )
    assert iso_utc(datetime(2024, 5, 6, 7, 8, 9, 5, tzinfo=UTC), fraction=True) == (
        "2024-05-06T07:08:09.000005Z"
    )


# (inspect State, the Status text Docker's list gives for it at some moment)
STATUS_CASES = [
    ({"Status": "running", "Running": True}, "Up 5 minutes", "Up"),
    (
        {"Status": "running", "Health": {"Status": "healthy"}},
        "Up 5 minutes (healthy)",
        "Up (healthy)",
    ),
    (
        {"Status": "running", "Health": {"Status": "starting"}},
        "Up Less than a second (health: starting)",
        "Up (health: starting)",
    ),
    (
        {"Status": "running", "Health": {"Status": "unhealthy"}},
        "Up About an hour (unhealthy)",
        "Up (unhealthy)",
    ),
    (
        {"Status": "paused", "Health": {"Status": "healthy"}},
        "Up 2 hours (Paused)",
        "Up (Paused)",
    ),
    ({"Status": "restarting", "ExitCode": 1}, "Restarting (1) 3 seconds ago", "Restarting (1)"),
    (
        {
            "Status": "exited",
            "ExitCode": 137,
            "StartedAt": "2024-01-01T00:00:00Z",
            "FinishedAt": "2024-01-01T01:00:00Z",
        },
        "Exited (137) About a minute ago",
        "Exited (137)",
    ),
    (
        {"Status": "created", "StartedAt": "0001-01-01T00:00:00Z"},
        "Created",
        "Created",
    ),
    ({"Status": "dead"}, "Dead", "Dead"),
    ({"Status": "removing"}, "Removal In Progress", "Removal In Progress"),
]


@pytest.mark.parametrize(("state", "listed", "want"), STATUS_CASES)
def test_status_from_inspect_equals_status_from_list(state, listed, want):
    assert status_from_state(state) == want
    assert status_from_list(listed) == want
    assert status_from_list(want) == want  # already normalised: unchanged


def test_list_row_and_inspect_of_one_container_agree():
    """The Engine's list row and inspect document of one container give the same
    list fields (the list row is what docker and ssh show, the inspect what the
    agent and every detail show)."""
    inspect = {
        "Id": "c" * 64,
        "Name": "/web",
        "Created": "2024-05-06T07:08:09.987654321Z",
        "Image": "sha256:" + "d" * 64,
        "Config": {"Image": "busybox:1", "Labels": {"a": "b"}, "Cmd": "sleep 1"},
        "State": {
            "Status": "running",
            "Running": True,
            "StartedAt": "2024-05-06T07:08:10.1Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
            "Health": {"Status": "healthy", "FailingStreak": 0},
        },
        "NetworkSettings": {
            "Ports": {
                "80/tcp": [
                    {"HostIp": "::", "HostPort": "8080"},
                    {"HostIp": "0.0.0.0", "HostPort": "8080"},
                ],
                "53/udp": None,
            }
        },
    }
    row = {
        "Id": "c" * 64,
        "Names": ["/web"],
        "Image": "busybox:1",
        "State": "running",
        "Status": "Up 12 seconds (healthy)",
        "Created": 1714979289,
        "Ports": [
            {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
            {"PrivatePort": 53, "Type": "udp"},
            {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "::"},
        ],
        "Labels": {"a": "b"},
    }
    detail = detail_dict_from_inspect(inspect, "x:1")
    listed = summary_from_engine_list(row, "x:1").model_dump(mode="json")
    assert {k: detail[k] for k in ContainerSummary.model_fields} == listed
    assert listed["status"] == "Up (healthy)" and listed["created"] == "2024-05-06T07:08:09Z"
    assert detail["command"] == "sleep 1" and detail["started_at"] == "2024-05-06T07:08:10Z"
    assert detail["finished_at"] is None
    # The model builder is the dict builder, validated.
    assert detail_from_inspect(inspect, "x:1") == ContainerDetail(**detail)
    assert detail_from_inspect(inspect, "x:1").model_dump(mode="json") == detail


def test_ports_from_inspect():
    ports = ports_from_inspect(
        {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "53/udp": None}
    )
    assert [p.model_dump() for p in ports] == [
        {"private": 53, "public": None, "type": "udp", "ip": None},
        {"private": 80, "public": 8080, "type": "tcp", "ip": "0.0.0.0"},
    ]


@pytest.mark.parametrize("ref", ["", "-x", "a b", "a;b", "x" * 129, "ABCDEF$", "é"])
def test_invalid_refs(ref):
    with pytest.raises(BadRequest):
        validate_ref(ref)


@pytest.mark.parametrize("ref", ["web", "my_app.1-2", "a" * 12, "0123456789abcdef" * 4])
def test_valid_refs(ref):
    assert validate_ref(ref) == ref


def test_cpu_percent_like_docker_stats():
    sample = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 300},
            "system_cpu_usage": 2000,
            "online_cpus": 2,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
        "memory_stats": {"usage": 1000, "limit": 4000, "stats": {"inactive_file": 200}},
        "networks": {"eth0": {"rx_bytes": 5, "tx_bytes": 7}},
        "blkio_stats": {
            "io_service_bytes_recursive": [{"op": "read", "value": 3}, {"op": "write", "value": 4}]
        },
        "pids_stats": {"current": 2},
    }
    s = stats_from_engine(sample)
    # (300-100)/(2000-1000) * 2 cpus * 100
    assert s.cpu_percent == 40.0
    assert (s.mem_usage_bytes, s.mem_limit_bytes) == (800, 4000)
    assert (s.net_rx_bytes, s.net_tx_bytes, s.block_read_bytes, s.block_write_bytes, s.pids) == (
        5,
        7,
        3,
        4,
        2,
    )


def test_stats_like_docker_stats_without_network_and_on_cgroup_v1():
    # A container without a network: docker stats (and so the ssh and agent sources)
    # shows 0B / 0B, not "no value".
    s = stats_from_engine(
        {
            "memory_stats": {
                "usage": 1000,
                "limit": 4000,
                "stats": {"total_inactive_file": 300, "inactive_file": 100},
            },
            "pids_stats": {"current": 1},
        }
    )
    assert (s.net_rx_bytes, s.net_tx_bytes) == (0, 0)
    assert s.mem_usage_bytes == 700  # cgroup v1: total_inactive_file first, as docker does
    assert stats_from_engine(None) is None and stats_from_engine({}) is None


def test_detail_from_inspect_masks_env():
    data = {
        "Id": "f" * 64,
        "Name": "/db",
        "Created": "2024-01-01T00:00:00Z",
        "Config": {
            "Image": "postgres:16",
            "Env": ["POSTGRES_PASSWORD=s3cret", "TZ=UTC"],
            "Labels": {"a": "b"},
            "Cmd": ["postgres"],
            "Entrypoint": None,
        },
        "State": {
            "Status": "running",
            "StartedAt": "2024-01-01T00:00:01Z",
            "ExitCode": 0,
            "Health": {"Status": "healthy"},
        },
        "NetworkSettings": {"Ports": {}, "Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
        "Mounts": [
            {
                "Type": "volume",
                "Name": "pgdata",
                "Destination": "/var/lib/postgresql/data",
                "RW": True,
            }
        ],
        "RestartCount": 1,
    }
    d = detail_from_inspect(data, "docker:1")
    assert (
        d.name == "db"
        and d.state == "running"
        and d.status == "Up (healthy)"
        and d.health == "healthy"
        and d.command == "postgres"
    )
    assert d.extra == {
        "image_id": None,
        "user": None,
        "restart_policy": None,
        "oom_killed": False,
        "error": None,
    }
    assert [(e.name, e.value, e.masked) for e in d.env] == [
        ("POSTGRES_PASSWORD", "****", True),
        ("TZ", "UTC", False),
    ]
    assert d.mounts[0].source == "pgdata" and d.networks[0].ip == "172.17.0.2"
    assert "s3cret" not in d.model_dump_json()
