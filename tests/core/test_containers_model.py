"""Pure normalisation logic shared by the sources."""

import pytest
from archnest import (
    BadRequest,
    detail_from_inspect,
    iso_utc,
    normalise_state,
    ports_from_inspect,
    stats_from_engine,
    validate_ref,
)


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
    ],
)
def test_normalise_state(raw, want):
    assert normalise_state(raw) == want


def test_iso_utc_formats():
    assert iso_utc("2024-05-06T07:08:09.123456789Z") == "2024-05-06T07:08:09.123456Z"
    assert iso_utc("2024-05-06T09:08:09+02:00") == "2024-05-06T07:08:09Z"
    assert iso_utc("2024-05-06 07:08:09 +0000 UTC") == "2024-05-06T07:08:09Z"
    assert iso_utc(0) is None and iso_utc("0001-01-01T00:00:00Z") is None
    assert iso_utc(1700000000) == "2023-11-14T22:13:20Z"


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
        and d.health == "healthy"
        and d.command == "postgres"
    )
    assert [(e.name, e.value, e.masked) for e in d.env] == [
        ("POSTGRES_PASSWORD", "****", True),
        ("TZ", "UTC", False),
    ]
    assert d.mounts[0].source == "pgdata" and d.networks[0].ip == "172.17.0.2"
    assert "s3cret" not in d.model_dump_json()
