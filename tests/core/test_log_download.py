"""The log download (GET .../containers/{ref}/logs/download) against the real dockerd,
through the Engine API source and through the ssh source: every line, the attachment
headers, since/until on the lines' real times, and clear 400s for bad input."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient
from archnest.keys import STREAMS_KEY

from tests.docker_tcp.conftest import add_engine, engine_body
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv

LINES = 1200
# stdout and stderr interleaved, so both streams are read.
PRINTER = [
    "sh",
    "-c",
    f"i=0; while [ $i -lt {LINES} ]; do echo out $i; if [ $((i % 10)) -eq 0 ]; then "
    "echo err $i >&2; fi; i=$((i+1)); done",
]
STDERR_LINES = LINES // 10
# Two batches of lines two seconds apart: a time between them splits the log.
TWO_BATCHES = [
    "sh",
    "-c",
    "for i in 1 2 3 4 5; do echo early $i; done; sleep 2.5; "
    "for i in 1 2 3 4 5 6; do echo late $i; done",
]
_NAME = re.compile(r'attachment; filename="([A-Za-z0-9_.-]+)"')


@pytest.fixture(params=["docker", "ssh"])
async def host_id(
    request: pytest.FixtureRequest,
    archnest_client: TestClient,
    admin_headers: dict[str, str],
    testenv_docker: TestEnv,
) -> str:
    if request.param == "docker":
        body = engine_body(testenv_docker, "unix", name="download-engine")
        return f"docker:{await add_engine(archnest_client, admin_headers, body)}"
    body = target_payload(testenv_docker, testenv_docker.ssh_target, "key", docker=True)
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == 201, await r.text()
    return f"ssh:{(await r.json())['id']}"


def finished(env: TestEnv, name: str, cmd: list[str]) -> str:
    env.run_container(name, cmd)
    assert env.docker("wait", name) == "0"
    return name


async def download(
    client: TestClient, headers: dict[str, str], host_id: str, ref: str, **query: str
) -> tuple[int, dict, str]:
    r = await client.get(
        f"/api/hosts/{host_id}/containers/{ref}/logs/download", params=query, headers=headers
    )
    return r.status, dict(r.headers), await r.text()


async def slots_settle(client: TestClient) -> bool:
    for _ in range(50):
        if client.app[STREAMS_KEY].count("follow") == 0:
            return True
        await asyncio.sleep(0.02)
    return False


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_every_line_as_an_attachment(
    archnest_client: TestClient, viewer_headers: dict[str, str], host_id: str, testenv_docker
) -> None:
    name = finished(testenv_docker, "printer", PRINTER)
    status, headers, text = await download(archnest_client, viewer_headers, host_id, name)
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/plain")
    m = _NAME.fullmatch(headers["Content-Disposition"])
    assert m, headers["Content-Disposition"]
    assert re.fullmatch(r"printer-(docker|ssh)-\d+-\d{8}T\d{6}Z\.log", m.group(1))
    lines = text.splitlines()
    assert len(lines) == LINES + STDERR_LINES
    assert [ln for ln in lines if ln.startswith("out ")] == [f"out {i}" for i in range(LINES)]
    assert sorted(ln for ln in lines if ln.startswith("err ")) == sorted(
        f"err {i}" for i in range(0, LINES, 10)
    )
    # The slot taken for the download is given back (the handler ends just after the
    # client has read the last chunk).
    assert await slots_settle(archnest_client)

    # With timestamps: each line starts with its ISO 8601 UTC time, in order per stream.
    # (tail is checked on slow lines below: the daemon's tail over lines written within
    # the same microseconds on two streams is its own business.)
    status, _, text = await download(archnest_client, viewer_headers, host_id, name, timestamps="1")
    assert status == 200
    stamped = text.splitlines()
    assert len(stamped) == LINES + STDERR_LINES
    for line in stamped:
        ts, _, rest = line.partition(" ")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ts), line
        assert rest.startswith(("out ", "err "))
    outs = [ln.partition(" ") for ln in stamped if " out " in ln]
    assert [rest for _, _, rest in outs] == [f"out {i}" for i in range(LINES)]
    assert [ts for ts, _, _ in outs] == sorted(ts for ts, _, _ in outs)


async def test_since_and_until_split_the_log_on_real_times(
    archnest_client: TestClient, viewer_headers: dict[str, str], host_id: str, testenv_docker
) -> None:
    name = finished(testenv_docker, "batches", TWO_BATCHES)
    c, h = archnest_client, viewer_headers
    status, _, text = await download(c, h, host_id, name, timestamps="1")
    assert status == 200, text
    stamped = [ln.split(" ", 1) for ln in text.splitlines()]
    assert [t for _, t in stamped] == [f"early {i}" for i in range(1, 6)] + [
        f"late {i}" for i in range(1, 7)
    ]
    last_early, first_late = unix(stamped[4][0]), unix(stamped[5][0])
    assert first_late - last_early >= 2
    # A whole second strictly between the batches: until takes the early ones, since
    # the late ones (both bounds are inclusive, whole seconds).
    cut = math.ceil(last_early)
    assert cut < first_late
    status, _, text = await download(c, h, host_id, name, until=str(cut))
    assert status == 200 and text.splitlines() == [f"early {i}" for i in range(1, 6)]
    status, _, text = await download(c, h, host_id, name, since=str(cut + 1))
    assert status == 200 and text.splitlines() == [f"late {i}" for i in range(1, 7)]
    # RFC 3339 works as well as unix seconds.
    rfc = datetime.fromtimestamp(cut + 1).astimezone().isoformat()
    status, _, text = await download(c, h, host_id, name, since=rfc)
    assert status == 200 and text.splitlines() == [f"late {i}" for i in range(1, 7)]
    # Both bounds together; tail counts from the log's end (as the docker CLI does).
    status, _, text = await download(
        c, h, host_id, name, since=str(int(unix(stamped[0][0]))), until=str(cut)
    )
    assert status == 200 and text.splitlines() == [f"early {i}" for i in range(1, 6)]
    status, _, text = await download(c, h, host_id, name, tail="2")
    assert status == 200 and text.splitlines() == ["late 5", "late 6"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "-5"}, "since"),
        ({"since": "1700000000; rm -rf /"}, "since"),
        ({"until": "2024-02-30T00:00:00Z"}, "until"),
        ({"until": "2024-01-01 00:00:00"}, "until"),
        ({"since": "1700000100", "until": "1700000000"}, "until"),
    ],
)
async def test_bad_times_are_400_naming_the_parameter(
    archnest_client: TestClient,
    viewer_headers: dict[str, str],
    testenv_docker: TestEnv,
    admin_headers: dict[str, str],
    query: dict[str, str],
    field: str,
) -> None:
    engine = await add_engine(
        archnest_client, admin_headers, engine_body(testenv_docker, "unix", name="bad-times")
    )
    status, _, text = await download(
        archnest_client, viewer_headers, f"docker:{engine}", "anything", **query
    )
    assert status == 400, text
    assert f'"field": "{field}"' in text or f'"field":"{field}"' in text


async def test_unknown_container_is_a_json_404(
    archnest_client: TestClient, viewer_headers: dict[str, str], host_id: str
) -> None:
    status, headers, text = await download(archnest_client, viewer_headers, host_id, "no-such")
    assert status == 404, text
    assert headers["Content-Type"].startswith("application/json")
    assert "Content-Disposition" not in headers
    assert await slots_settle(archnest_client)
