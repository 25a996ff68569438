"""Unified host and container routes over every ``HostSource``.

``add_container_routes`` is also what each source plugin uses for its own prefix
(``/api/docker/hosts/{id}/...``), so list/detail/logs/actions/exec behave identically
everywhere and live in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, TypeAdapter

from .auth import current_user, websocket
from .containers import (
    ACTIONS,
    ContainerDetail,
    ContainerSummary,
    LogLine,
    validate_action,
    validate_ref,
)
from .errors import ApiError, BadRequest, HostTimeout, NotFound
from .keys import SETTINGS_KEY, SOURCES_KEY, STREAMS_KEY
from .openapi import Content, Param, operation
from .sources import ExecSession, HostInfo, HostSource, LogOptions
from .streams import StreamKind, StreamSlot

log = logging.getLogger("archnest.hosts")

SourceResolver = Callable[[web.Request], Awaitable[tuple[HostSource, str]]]
# A followed log sends a comment this often when quiet: proxies keep the connection and
# a client that went away is noticed.
PING_SECONDS = 15.0


def _sources(app: web.Application) -> dict[str, HostSource]:
    return app[SOURCES_KEY]


class KnownHosts:
    """A few seconds of memory of hosts found to exist: every request names a host, and
    a source's lookup is a database query. Only hits are kept, so a new host works at
    once; a host deleted elsewhere is refused by its source a few seconds later."""

    def __init__(self, ttl: float = 3.0, max_entries: int = 10_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._seen: dict[str, float] = {}

    def fresh(self, host_id: str) -> bool:
        seen = self._seen.get(host_id)
        return seen is not None and time.monotonic() - seen < self.ttl

    def remember(self, host_id: str) -> None:
        if len(self._seen) >= self.max_entries:
            self._seen.clear()
        self._seen[host_id] = time.monotonic()


KNOWN_HOSTS_KEY = web.AppKey("archnest_known_hosts", KnownHosts)


async def resolve_host(app: web.Application, source_name: str, key: str) -> tuple[HostSource, str]:
    """The one resolver behind every URL tree: the source and the host key, or a 404
    ``unknown_host`` (unknown source, empty key, or a host the source does not have)."""
    source = _sources(app).get(source_name)
    if source is None or not key:
        raise NotFound(f"unknown host {source_name}:{key}", code="unknown_host")
    known = app[KNOWN_HOSTS_KEY]
    host_id = source.host_id(key)
    if not known.fresh(host_id):
        await with_timeout(app, source.get_host(key), "host lookup")
        known.remember(host_id)
    return source, key


async def resolve_host_id(app: web.Application, host_id: str) -> tuple[HostSource, str]:
    """``resolve_host`` for a unified host id, ``"source:key"``."""
    source_name, _, key = host_id.partition(":")
    return await resolve_host(app, source_name, key)


def source_resolver(source_name: str, placeholder: str = "id") -> SourceResolver:
    """The resolver of a per-source URL tree (``/api/docker/hosts/{id}/...``): the key
    from the path placeholder, or from ``?host=`` (the exec socket)."""

    async def resolve(request: web.Request) -> tuple[HostSource, str]:
        key = request.match_info.get(placeholder) or request.query.get("host", "")
        return await resolve_host(request.app, source_name, key)

    return resolve


async def with_timeout(app: web.Application, coro: Awaitable, what: str):  # type: ignore[no-untyped-def]
    """Run a host call under the per-host timeout; a timeout becomes a 504."""
    timeout = app[SETTINGS_KEY].host_timeout
    try:
        return await asyncio.wait_for(coro, timeout)
    except TimeoutError as exc:
        raise HostTimeout(f"{what}: no answer within {timeout:g}s") from exc


async def _guarded(app: web.Application, host: HostInfo, coro: Awaitable, what: str):  # type: ignore[no-untyped-def]
    """Run one host call; a failure becomes that host's status and error, never raises."""
    try:
        result = await with_timeout(app, coro, host.name)
    except ApiError as exc:
        host.status, host.error = "error", exc.message
        return None
    except Exception as exc:  # a plugin bug must stay that host's problem
        log.warning("%s of %s failed: %r", what, host.id, exc)
        host.status, host.error = "error", f"{type(exc).__name__}: {exc}"
        return None
    if host.status == "unknown":
        host.status = "ok"
    return result


def _key(host: HostInfo) -> str:
    return host.id.partition(":")[2]


async def _probe(app: web.Application, source: HostSource, host: HostInfo) -> HostInfo:
    if host.status not in ("error", "stale"):
        await _guarded(app, host, source.probe(_key(host)), "probe")
    return host


async def _hosts_of(app: web.Application, source: HostSource) -> list[HostInfo]:
    try:
        return await with_timeout(app, source.list_hosts(), f"source {source.name}")
    except Exception as exc:
        log.warning("source %s could not list hosts: %r", source.name, exc)
        return []


def _bounded(app: web.Application) -> Callable[[Awaitable], Awaitable]:
    """Wrap host calls of one fan-out so at most ``fanout_concurrency`` run at once."""
    gate = asyncio.Semaphore(app[SETTINGS_KEY].fanout_concurrency)

    async def run(coro: Awaitable):  # type: ignore[no-untyped-def]
        async with gate:
            return await coro

    return run


async def list_all_hosts(app: web.Application, probe: bool = True) -> list[HostInfo]:
    """Every host of every source, probed concurrently; failures stay per host."""
    bounded = _bounded(app)

    async def hosts_of(source: HostSource) -> list[HostInfo]:
        hosts = await _hosts_of(app, source)
        if not probe:
            return hosts
        return list(await asyncio.gather(*(bounded(_probe(app, source, h)) for h in hosts)))

    groups = await asyncio.gather(*(hosts_of(s) for s in _sources(app).values()))
    return [h for group in groups for h in group]


async def list_all_containers(
    app: web.Application,
    *,
    all: bool = False,
    sources: set[str] | None = None,
    host_ids: set[str] | None = None,
) -> tuple[list[HostInfo], list[ContainerSummary]]:
    """Containers of many hosts in one call, listed concurrently; the listing doubles as
    the health check, so a dead host is its own error and the others still list."""
    if host_ids is not None:
        # Only the sources the chosen hosts belong to: a source's host list is a database
        # query, and this request is the "all hosts" page's refresh.
        named = {h.partition(":")[0] for h in host_ids}
        sources = named if sources is None else sources & named
    chosen = [s for s in _sources(app).values() if sources is None or s.name in sources]
    groups = await asyncio.gather(*(_hosts_of(app, s) for s in chosen))
    pairs = [
        (source, host)
        for source, hosts in zip(chosen, groups, strict=True)
        for host in hosts
        if host_ids is None or host.id in host_ids
    ]
    bounded = _bounded(app)
    listed = await asyncio.gather(
        *(
            bounded(_guarded(app, host, source.list_containers(_key(host), all=all), "list"))
            for source, host in pairs
        )
    )
    containers = [c for items in listed for c in (items or [])]
    return [host for _, host in pairs], containers


# Lists are serialised straight to JSON bytes by pydantic-core: a listing is the hottest
# route (the page refreshes it for every host), and model_dump + json.dumps cost several
# times more per row.
_SUMMARIES = TypeAdapter(list[ContainerSummary])


class _Index(BaseModel):
    hosts: list[HostInfo]
    containers: list[ContainerSummary]


_INDEX = TypeAdapter(_Index)


def _json(adapter: TypeAdapter, value: Any) -> web.Response:
    return web.Response(
        body=adapter.dump_json(value), content_type="application/json", charset="utf-8"
    )


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "0").lower() in ("1", "true", "yes", "on")


def _int_query(
    request: web.Request, name: str, default: int | None, lo: int, hi: int
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return value


class LogLines(BaseModel):
    lines: list[LogLine]


class ActionResult(BaseModel):
    ok: bool
    action: str
    container: str


ALL_PARAM = Param("all", "Include stopped containers.", type="boolean")
LOG_PARAMS = (
    Param("tail", "Lines from the end (0-100000, default 200).", type="integer"),
    Param("timestamps", "Prefix each line with its time.", type="boolean"),
    Param("since", "Only lines after this unix time.", type="integer"),
    Param("follow", "Stream new lines as `text/event-stream`.", type="boolean"),
    Param("format", "`text`: the lines as a plain-text attachment.", enum=("text",)),
)
SSE_LOGS = Content(
    "text/event-stream",
    {"type": "string"},
    "With `follow=1`: server-sent events; each `data:` is a LogLine as JSON; "
    "`event: error` carries an Error, `event: end` closes the stream.",
)


def log_options(request: web.Request) -> LogOptions:
    return LogOptions(
        tail=_int_query(request, "tail", 200, 0, 100_000),
        timestamps=_flag(request, "timestamps"),
        since=_int_query(request, "since", None, 0, 2**40),
    )


def add_container_routes(
    app: web.Application,
    prefix: str,
    resolve: SourceResolver | str,
    *,
    exec_path: str | None = None,
) -> None:
    """Register list/detail/logs/action routes under ``prefix`` (which ends in a host
    placeholder, e.g. ``/api/docker/hosts/{id}``) and, if given, the exec WebSocket.

    ``resolve`` is a source name (the usual case: a per-source URL tree, resolved by
    ``source_resolver`` with the key from that placeholder) or a resolver of its own.
    """
    if isinstance(resolve, str):
        placeholder = re.search(r"\{(\w+)[^}]*\}$", prefix)
        if placeholder is None:
            raise ValueError(f"prefix {prefix!r} must end in a host placeholder")
        resolve = source_resolver(resolve, placeholder.group(1))

    @operation(
        "Containers of one host",
        query=(ALL_PARAM,),
        responses={200: list[ContainerSummary]},
        errors=(400, 502, 504),
    )
    async def list_containers(request: web.Request) -> web.Response:
        source, key = await resolve(request)
        items = await with_timeout(
            request.app, source.list_containers(key, all=_flag(request, "all")), "list"
        )
        return _json(_SUMMARIES, items)

    @operation(
        "One container in detail (env values that look secret are masked)",
        responses={200: ContainerDetail},
        errors=(400, 502, 504),
    )
    async def get_container(request: web.Request) -> web.Response:
        ref = validate_ref(request.match_info["ref"])
        source, key = await resolve(request)
        detail = await with_timeout(request.app, source.get_container(key, ref), "inspect")
        return web.json_response(detail.model_dump(mode="json"))

    @operation(
        "A container's logs: the last lines, a text download, or followed live",
        query=LOG_PARAMS,
        responses={
            200: (
                LogLines,
                SSE_LOGS,
                Content("text/plain", {"type": "string"}, "With `format=text`."),
            )
        },
        errors=(400, 429, 501, 502, 504),
    )
    async def container_logs(request: web.Request) -> web.StreamResponse:
        ref = validate_ref(request.match_info["ref"])
        source, key = await resolve(request)
        opts = log_options(request)
        if _flag(request, "follow"):
            return await _stream_logs(request, source, key, ref, opts)
        lines = await with_timeout(request.app, source.logs(key, ref, opts), "logs")
        if request.query.get("format") == "text":
            text = "".join(
                (f"{ln.ts} " if ln.ts else "") + ln.text + ("" if ln.text.endswith("\n") else "\n")
                for ln in lines
            )
            return web.Response(
                text=text,
                content_type="text/plain",
                headers={"Content-Disposition": f'attachment; filename="{ref}.log"'},
            )
        return web.json_response({"lines": [ln.model_dump(mode="json") for ln in lines]})

    @operation(
        "Start, stop, restart, pause, unpause, kill or remove a container",
        path=(Param("action", "What to do.", enum=ACTIONS),),
        query=(Param("force", "With `remove`: also a running container.", type="boolean"),),
        responses={200: ActionResult},
        errors=(400, 409, 501, 502, 504),
    )
    async def container_action(request: web.Request) -> web.Response:
        ref = validate_ref(request.match_info["ref"])
        action = validate_action(request.match_info["action"])
        source, key = await resolve(request)
        await with_timeout(
            request.app,
            source.action(key, ref, action, force=_flag(request, "force")),
            action,
        )
        return web.json_response({"ok": True, "action": action, "container": ref})

    app.router.add_get(prefix + "/containers", list_containers)
    # {ref:[^/]+}: aiohttp's default placeholder refuses braces, which would turn a bad
    # ref like "--format={{json .}}" into a 404; every bad ref must get validate_ref's 400.
    ref = "{ref:[^/]+}"
    app.router.add_get(prefix + f"/containers/{ref}", get_container)
    app.router.add_get(prefix + f"/containers/{ref}/logs", container_logs)
    app.router.add_post(prefix + f"/containers/{ref}/{{action}}", container_action)
    if exec_path is not None:
        app.router.add_get(exec_path, make_exec_handler(resolve))


def _stream_slot(request: web.Request, kind: StreamKind, host_id: str) -> StreamSlot:
    user = current_user(request)
    return request.app[STREAMS_KEY].acquire(kind, user.username if user else "", host_id)


async def _stream_logs(
    request: web.Request, source: HostSource, key: str, ref: str, opts: LogOptions
) -> web.StreamResponse:
    registry = request.app[STREAMS_KEY]
    with _stream_slot(request, "follow", source.host_id(key)):
        iterator = source.follow_logs(key, ref, opts).__aiter__()
        pending: asyncio.Future | None = None
        closing = asyncio.ensure_future(registry.closing.wait())
        try:
            # Open the stream before sending headers so a bad ref/host is a JSON error.
            first = await with_timeout(request.app, _first(iterator), "logs")
            resp = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
                }
            )
            await resp.prepare(request)
            try:
                await resp.write(b": connected\n\n")
                if first is not None:
                    await resp.write(_sse(first.model_dump(mode="json")))
                while True:
                    if pending is None:
                        pending = asyncio.ensure_future(iterator.__anext__())
                    await asyncio.wait(
                        {pending, closing},
                        timeout=PING_SECONDS,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if not pending.done():
                        if closing.done():
                            await resp.write(_sse({"reason": "server shutting down"}, "end"))
                            return resp
                        # A comment line: keeps proxies from timing out, notices a gone client.
                        await resp.write(b": ping\n\n")
                        continue
                    try:
                        line = pending.result()
                    except StopAsyncIteration:
                        pending = None
                        break
                    pending = None
                    if line is not None:
                        await resp.write(_sse(line.model_dump(mode="json")))
                await resp.write(b"event: end\ndata: {}\n\n")
            except (ConnectionResetError, asyncio.CancelledError):
                pass  # the client went away: the finally below releases the host side
            except ApiError as exc:
                with contextlib.suppress(ConnectionResetError):
                    await resp.write(
                        _sse({"error": {"code": exc.code, "message": exc.message}}, "error")
                    )
            return resp
        finally:
            # Every exit path (client gone, host error, shutdown, cancellation) ends up
            # here: the engine connection / SSH channel of the follow is released.
            closing.cancel()
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await asyncio.shield(aclose())


async def _first(iterator):  # type: ignore[no-untyped-def]
    # Sources yield None once the stream is open (after their own checks), so a missing
    # container is a proper 404 while a quiet one does not hit the host timeout.
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return None


def _sse(data: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def make_exec_handler(
    resolve: SourceResolver,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A WebSocket handler bridging a source's ExecSession.

    Protocol: binary or text frames from the browser are stdin; a text frame
    ``{"type":"resize","cols":N,"rows":M}`` resizes; output is sent as binary frames.
    Everything that can be checked without the host (ref, host, command, size, bounds,
    a real upgrade) is an HTTP error; the session itself starts only after the upgrade,
    so its errors close the socket with code ``4000 + status`` and the message.
    """

    @websocket
    @operation(
        "An interactive terminal in a container (WebSocket)",
        description="Binary or text frames are stdin; a text frame "
        '`{"type":"resize","cols":N,"rows":M}` resizes; output comes as binary frames. '
        "Errors after the upgrade close the socket with code 4000 + HTTP status.",
        query=(
            Param(
                "host",
                "The host (a host id on /api/exec, the source's key elsewhere).",
                required=True,
            ),
            Param("container", "Container id or name.", required=True),
            Param("cmd", "The shell to run.", enum=tuple(SHELLS)),
            Param("cols", "Terminal width (10-1000).", type="integer"),
            Param("rows", "Terminal height (5-1000).", type="integer"),
        ),
        responses={101: None},
        errors=(400, 404, 429),
    )
    async def exec_ws(request: web.Request) -> web.StreamResponse:
        ref = validate_ref(request.query.get("container", ""))
        source, key = await resolve(request)
        cmd_name = request.query.get("cmd", "sh")
        # The command is a fixed choice, never free text from the request.
        if cmd_name not in SHELLS:
            raise BadRequest("cmd must be one of: " + ", ".join(SHELLS))
        cols = _int_query(request, "cols", 80, 10, 1000) or 80
        rows = _int_query(request, "rows", 24, 5, 1000) or 24
        ws = web.WebSocketResponse(heartbeat=30)
        if not ws.can_prepare(request).ok:
            # Nothing may start on the host for a request that cannot become a terminal.
            raise BadRequest("this route needs a WebSocket upgrade", code="websocket_required")
        with _stream_slot(request, "terminal", source.host_id(key)) as slot:
            await ws.prepare(request)
            slot.on_shutdown(lambda: ws.close(code=1001, message=b"server shutting down"))
            try:
                session = await with_timeout(
                    request.app,
                    source.exec(key, ref, SHELLS[cmd_name], cols=cols, rows=rows),
                    "exec",
                )
            except ApiError as exc:
                reason = exc.message.encode()[:120]
                await ws.close(code=4000 + exc.status, message=reason)
                return ws
            ended = asyncio.Event()

            async def end_at_shutdown() -> None:
                await ws.close(code=1001, message=b"server shutting down")
                await ended.wait()  # until the session (and its process) is closed

            slot.on_shutdown(end_at_shutdown)
            try:
                await _bridge(ws, session)
            finally:
                ended.set()
        return ws

    return exec_ws


SHELLS = {"sh": ["/bin/sh"], "bash": ["/bin/bash"], "ash": ["/bin/ash"]}


async def _bridge(ws: web.WebSocketResponse, session: ExecSession) -> None:
    """Pump the session to the socket and back until either side ends; the one close
    path of a terminal: whatever ended it, the session (and its process) is closed."""

    async def pump_output() -> None:
        try:
            while True:
                data = await session.read()
                if not data:
                    break
                await ws.send_bytes(data)
        finally:
            await ws.close()

    pump = asyncio.create_task(pump_output())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await session.write(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await _text_frame(session, msg.data)
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        # Closing the socket ends the process, whichever side closed first; shielded
        # because a browser that disconnects cancels this handler mid-cleanup.
        await asyncio.shield(session.close())
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)


async def _text_frame(session: ExecSession, data: str) -> None:
    if data.startswith("{"):
        try:
            ctl = json.loads(data)
        except ValueError:
            ctl = None
        if isinstance(ctl, dict) and ctl.get("type") == "resize":
            try:
                c, r = int(ctl.get("cols", 80)), int(ctl.get("rows", 24))
            except (TypeError, ValueError, OverflowError):
                return  # a bad resize frame is ignored, not fatal
            await session.resize(max(10, min(c, 1000)), max(5, min(r, 1000)))
            return
        if isinstance(ctl, dict) and ctl.get("type") == "input":
            await session.write(str(ctl.get("data", "")).encode())
            return
    await session.write(data.encode())


async def _unified_resolver(request: web.Request) -> tuple[HostSource, str]:
    host_id = request.match_info.get("host_id") or request.query.get("host", "")
    return await resolve_host_id(request.app, host_id)


@operation(
    "Every host of every source, with its status and capabilities",
    query=(Param("noprobe", "Do not contact the hosts: stored facts only.", type="boolean"),),
    responses={200: list[HostInfo]},
)
async def hosts_index(request: web.Request) -> web.Response:
    hosts = await list_all_hosts(request.app, probe=not _flag(request, "noprobe"))
    return web.json_response([h.model_dump(mode="json") for h in hosts])


@operation(
    "Containers of many hosts in one answer, with each host's status and error",
    query=(
        ALL_PARAM,
        Param("source", "Only hosts of these sources.", repeated=True),
        Param("host", "Only these host ids.", repeated=True),
    ),
    responses={200: _Index},
)
async def containers_index(request: web.Request) -> web.Response:
    """``GET /api/containers[?all=1][&source=ssh][&host=ssh:1&host=...]``: every chosen
    host's containers in one answer, with each host's status and error."""
    sources = set(request.query.getall("source", [])) or None
    host_ids = set(request.query.getall("host", [])) or None
    hosts, containers = await list_all_containers(
        request.app, all=_flag(request, "all"), sources=sources, host_ids=host_ids
    )
    return _json(_INDEX, _Index.model_construct(hosts=hosts, containers=containers))


def setup_unified_routes(app: web.Application) -> None:
    app[KNOWN_HOSTS_KEY] = KnownHosts()
    app.router.add_get("/api/hosts", hosts_index)
    app.router.add_get("/api/containers", containers_index)
    add_container_routes(app, "/api/hosts/{host_id}", _unified_resolver, exec_path="/api/exec")
