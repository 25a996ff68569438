"""The event subscription's HTTP reading and bounds, on a fake dial-stdio process (the
real sshd and dockerd are in test_ssh_events.py)."""

from __future__ import annotations

import shlex

import orjson
import pytest
from archnest import HostError
from archnest_docker_ssh import commands
from archnest_docker_ssh.engine import EngineFastPath, events_path
from archnest_docker_ssh.events import MAX_EVENT, LineSplitter, watch_events

from tests.ssh.test_engine_units import PING, FakePooled

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(action: str, cid: str) -> dict:
    return {"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": {}}}


class FakePool:
    def __init__(self, answer: bytes) -> None:
        self.answer, self.opened, self.idle_seconds = answer, [], 300.0

    async def open_process(self, target, command, *, background=False):  # type: ignore[no-untyped-def]
        assert background and command == "docker system dial-stdio"
        proc = FakePooled(self.answer)
        proc.proc.stdout.step = 4099  # odd-sized reads, not one byte at a time
        self.opened.append(proc)
        return proc

    def touch(self, target: int) -> None:
        pass


async def collect(answer: bytes) -> tuple[list, FakePool]:
    pool = FakePool(answer)
    got: list = []
    stream = watch_events(EngineFastPath(pool), 1, False, "unused", lambda r: None)  # type: ignore[arg-type]
    try:
        async for item in stream:
            got.append(item)
    finally:
        assert len(pool.opened) == 1 and pool.opened[0].closed  # always closed
    return got, pool


async def test_events_split_across_and_within_chunks() -> None:
    one, two, three = event("pause", "a"), event("unpause", "a"), event("die", "b")
    body = orjson.dumps(one) + b"\n" + orjson.dumps(two) + b"\n" + orjson.dumps(three) + b"\n"
    cut = len(orjson.dumps(one)) // 2
    answer = PING + HEAD + chunk(body[:cut]) + chunk(body[cut:]) + chunk(b"\n") + b"0\r\n\r\n"
    got, pool = await collect(answer)
    assert got == [None, one, two, three]
    sent = pool.opened[0].proc.stdin.sent
    assert f"GET {events_path((1, 41))} HTTP/1.1".encode() in sent


@pytest.mark.parametrize(
    "answer",
    [
        HEAD + chunk(b'{"Action": "pause"}\n'),  # the process or connection died
        HEAD + chunk(b'{"Action": "pau'),  # cut mid-event
        HEAD + chunk(b"not json\n"),
        HEAD + b"zz\r\n",
        HEAD + b"5\r\n{}\n\r\nXX",  # a chunk not followed by CRLF
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",  # not a stream
    ],
)
async def test_a_failing_stream_is_an_error(answer: bytes) -> None:
    with pytest.raises(HostError):
        await collect(PING + answer)


async def test_a_line_is_bounded() -> None:
    split = LineSplitter()
    assert split.feed(b'{"a": 1}\n{"b"') == [{"a": 1}]
    assert split.feed(b": 2}\n[1]\n\n") == [{"b": 2}]  # a non-object line is skipped
    with pytest.raises(HostError):
        LineSplitter().feed(b"x" * (MAX_EVENT + 1))
    with pytest.raises(HostError):
        LineSplitter().feed(b"x" * (MAX_EVENT + 1) + b"\n")
    # A huge chunk is read in pieces, and the line bound ends it before it is whole.
    answer = PING + HEAD + b"%x\r\n" % (64 * MAX_EVENT) + b"x" * (MAX_EVENT + 70000)
    with pytest.raises(HostError, match="1 MiB"):
        await collect(answer)


def test_events_command() -> None:
    assert shlex.split(commands.events(True)) == [
        "sudo",
        "-n",
        "docker",
        "events",
        "--format",
        "{{json .}}",
        "--filter",
        "type=container",
        "--since",
        "5s",
    ]
    assert shlex.split(commands.events(False))[:2] == ["docker", "events"]
