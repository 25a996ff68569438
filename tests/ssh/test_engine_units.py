"""The fast path's HTTP/1.1 client and path rules, on a fake dial-stdio process."""

from __future__ import annotations

import asyncio
import json
import shlex
from urllib.parse import unquote

import pytest
from archnest_docker_ssh import commands
from archnest_docker_ssh.engine import (
    KNOWN_API,
    MIN_API,
    EngineFastPath,
    EngineProtocolError,
    EngineStream,
    api_version,
    events_path,
    list_path,
)


class FakeReader:
    def __init__(self, data: bytes, step: int = 7) -> None:
        self.data, self.step, self.eof = data, step, False

    async def read(self, n: int = -1) -> bytes:
        await asyncio.sleep(0)
        chunk, self.data = self.data[: min(n, self.step)], self.data[min(n, self.step) :]
        self.eof = not chunk
        return chunk

    def at_eof(self) -> bool:
        return self.eof


class FakeWriter:
    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data


class FakeProc:
    def __init__(self, answer: bytes) -> None:
        self.stdout, self.stderr, self.stdin = FakeReader(answer), FakeReader(b""), FakeWriter()


class FakePooled:
    def __init__(self, answer: bytes) -> None:
        self.proc, self.closed = FakeProc(answer), False

    def alive(self) -> bool:
        return not self.closed

    async def close(self) -> None:
        self.closed = True


PING = b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nContent-Length: 2\r\n\r\nOK"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5;ext=1\r\n[{"Id\r\n8\r\n": "abc"\r\n2\r\n}]\r\n0\r\nX-Trailer: 1\r\n\r\n'
)


async def test_keep_alive_requests_with_length_and_chunked_bodies() -> None:
    fake = FakePooled(PING + CHUNKED)
    stream = EngineStream(fake, sudo=False)  # type: ignore[arg-type]
    await stream.ping()
    assert stream.version == KNOWN_API  # min(1.45, what we know)
    path = list_path(stream.version, True)
    assert await stream.get_json(path) == [{"Id": "abc"}]
    assert fake.proc.stdin.sent.count(b"Connection: keep-alive\r\n") == 2
    assert fake.proc.stdin.sent.split(b"\r\n")[0] == b"GET /_ping HTTP/1.1"
    assert f"GET {path} HTTP/1.1".encode() in fake.proc.stdin.sent
    assert stream.alive()
    await stream.close()
    assert fake.closed and not stream.alive()


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # the process died (or dial-stdio does not exist)
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[1,",  # cut mid-body
        b"SSH-2.0 hello\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n[]",  # no length on a keep-alive stream
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]XX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 500 Error\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{x}",
    ],
)
async def test_broken_answers_are_errors(answer: bytes) -> None:
    stream = EngineStream(FakePooled(answer), sudo=False)  # type: ignore[arg-type]
    with pytest.raises(EngineProtocolError):
        await stream.get_json(list_path(MIN_API, False))
    await stream.close()


async def test_connection_close_ends_the_stream() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n[]"
    stream = EngineStream(FakePooled(answer), sudo=False)  # type: ignore[arg-type]
    assert await stream.get_json(list_path(MIN_API, False)) == []
    assert not stream.alive()
    await stream.close()


async def test_only_fixed_paths_reach_the_stream() -> None:
    stream = EngineStream(FakePooled(PING), sudo=False)  # type: ignore[arg-type]
    events = events_path((1, 41))
    for bad in (
        "/v1.41/containers/x/json",
        "/_ping\r\nX: y",
        "/v1.41/containers/json?all=2",
        "/v1.41/events",
        "/v1.41/events?filters=%7B%7D",
        events + "&since=0",
        events.replace("container", "image"),
        events + "\r\nX: y",
        events.replace("/v1.41/", "/v1.41/../"),
    ):
        with pytest.raises(ValueError):
            await stream.request(bad)
        with pytest.raises(ValueError):
            await stream.start(bad)
    assert stream.proc.proc.stdin.sent == b""
    await stream.close()
    assert events == "/v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D"
    assert json.loads(unquote(events.partition("filters=")[2])) == {"type": ["container"]}


def test_api_version_negotiation() -> None:
    assert api_version("1.41") == (1, 41)
    assert api_version("1.40") == (1, 40)
    assert api_version("1.47") == KNOWN_API
    assert api_version("2.0") == KNOWN_API
    for odd in (None, "", "1.41/../x", "1", "latest"):
        assert api_version(odd) == MIN_API
    assert list_path((1, 40), False) == "/v1.40/containers/json?all=0"


def test_dial_stdio_command() -> None:
    assert shlex.split(commands.dial_stdio(False)) == ["docker", "system", "dial-stdio"]
    assert shlex.split(commands.dial_stdio(True)) == [
        "sudo",
        "-n",
        "docker",
        "system",
        "dial-stdio",
    ]


class HangingReader(FakeReader):
    async def read(self, n: int = -1) -> bytes:
        if not self.data:
            await asyncio.Event().wait()
        return await super().read(n)


class FakePool:
    def __init__(self, answers: list[bytes]) -> None:
        self.answers, self.opened = answers, []

    async def open_process(self, target, command, *, background=False):  # type: ignore[no-untyped-def]
        assert background and command == "docker system dial-stdio"
        answer = self.answers.pop(0)
        proc = FakePooled(answer)
        if answer:  # an empty answer is a process that exits at once
            proc.proc.stdout.__class__ = HangingReader
        self.opened.append(proc)
        return proc

    def touch(self, target: int) -> None:
        pass


LIST = b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n[{"Id": "a"}]'


async def test_cancelled_request_abandons_the_stream_and_failures_back_off() -> None:
    pool = FakePool([PING + b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n[", PING + LIST, b""])
    fast = EngineFastPath(pool)  # type: ignore[arg-type]
    task = asyncio.create_task(fast.list_containers(1, False, False))
    await asyncio.sleep(0.05)
    task.cancel()  # mid-body: the stream must not be reused
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fast.list_containers(1, False, False) == [{"Id": "a"}]
    assert fast.opens == 2 and pool.opened[0].closed and fast.failures == 0
    # A stream that cannot open: fall back (None) and do not try again at once.
    assert await fast.list_containers(2, False, False) is None
    assert await fast.list_containers(2, False, False) is None
    assert fast.opens == 3 and fast.failures == 1
    await fast.close()
    assert all(p.closed for p in pool.opened)
