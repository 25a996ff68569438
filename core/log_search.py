"""Log search across containers and hosts: ``GET /api/logs/search`` streams every
matching line as NDJSON while the logs are read.

Each chosen container's log is read through its source's streaming reader (the one the
log download uses, so nothing is held whole) and matched line by line in the app: the
text or pattern never leaves the app, and what reaches a host is what the log download
sends (a container ref from the host's own listing, since/until as ints), built by the
source's own command builder.

Bounds (``SearchLimits``, each an ``ARCHNEST_LOG_SEARCH_*`` variable): hosts read in
parallel, containers per host in parallel (below the SSH pool's stream channels),
lines scanned, matches (``limit``) and wall time. The stream ends with one summary
line: ``{"done": true, ...}``, or ``{"truncated": true, "reason": ...}`` when a bound
stopped it. Result lines are the ones with a ``text`` key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from .containers import REF_PATTERN, ContainerSummary, LogLine
from .errors import ApiError, BadRequest, TooManyRequests
from .hosts import list_all_containers
from .keys import STREAMS_KEY
from .log_stream import _first, stream_slot, time_query
from .openapi import Content, Param, operation
from .query import flag, int_query
from .resolve import _sources, with_timeout
from .search_pattern import LIMITS_KEY, SearchLimits, compile_matcher
from .sources import HostInfo, HostSource, LogOptions

PROJECT_LABEL = "com.docker.compose.project"
NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class SearchQuery:
    matches: Callable[[str], bool]
    host_ids: set[str] | None
    containers: set[str] | None
    project: str | None
    since: int | None
    until: int | None
    limit: int


def parse_query(request: web.Request, limits: SearchLimits) -> SearchQuery:
    """Every option checked before any host is contacted; a bad one is a 400 naming it."""
    q = request.query.get("q", "")
    if not q:
        raise BadRequest("q (the text to find) is required", code="invalid_query", field="q")
    matches = compile_matcher(
        q,
        regex=flag(request, "regex"),
        case=flag(request, "case"),
        max_chars=limits.pattern_chars,
    )
    hosts = request.query.getall("host", [])
    for h in hosts:
        if len(h) > 200 or ":" not in h:
            raise BadRequest(
                f"host {h[:40]!r} is not a host id", code="invalid_query", field="host"
            )
    names = request.query.getall("container", [])
    for name in names:
        if not REF_PATTERN.fullmatch(name):
            raise BadRequest("invalid container name", code="invalid_ref", field="container")
    project = request.query.get("project") or None
    if project is not None and len(project) > 255:
        raise BadRequest("project is too long", code="invalid_query", field="project")
    since, until = time_query(request, "since", ceil=False), time_query(request, "until", ceil=True)
    if since is not None and until is not None and until < since:
        raise BadRequest("until must not be before since", code="invalid_query", field="until")
    try:
        limit = int_query(request, "limit", limits.default_limit, 1, limits.max_limit)
    except BadRequest as exc:
        raise BadRequest(exc.message, code="invalid_query", field="limit") from exc
    return SearchQuery(
        matches=matches,
        host_ids=set(hosts) or None,
        containers=set(names) or None,
        project=project,
        since=since,
        until=until,
        limit=limit or limits.default_limit,
    )


def _ref(c: ContainerSummary) -> str:
    # The name when it is a valid ref (the host's own listing gave it), else the id.
    return c.name if REF_PATTERN.fullmatch(c.name) else c.id


class Search:
    """One search: readers (one per container, bounded per host and overall) feed a
    queue of encoded result lines; the handler writes them out as they come."""

    def __init__(self, request: web.Request, query: SearchQuery, limits: SearchLimits) -> None:
        self.request, self.query, self.limits = request, query, limits
        self.out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)
        self.scanned = self.matched = self.containers = 0
        self.errors: list[dict[str, str]] = []
        self.reason: str | None = None
        self.stopped = asyncio.Event()

    def halt(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.stopped.set()

    def error(self, host_id: str, container: str | None, exc: BaseException) -> None:
        entry = {"host_id": host_id}
        if container is not None:
            entry["container"] = container
        if isinstance(exc, ApiError):
            entry |= {"code": exc.code, "message": exc.message}
        else:
            entry |= {"code": "host_error", "message": f"{type(exc).__name__}: {exc}"}
        self.errors.append(entry)

    def summary(self) -> dict[str, Any]:
        head: dict[str, Any] = (
            {"truncated": True, "reason": self.reason} if self.reason else {"done": True}
        )
        return head | {
            "scanned": self.scanned,
            "matched": self.matched,
            "containers": self.containers,
            "errors": self.errors,
        }

    async def plan(self) -> list[tuple[HostSource, HostInfo, list[ContainerSummary]]]:
        """The hosts and containers to read, from the listing (the live cache where a
        host is watched); hosts that cannot be read become error entries."""
        q, app = self.query, self.request.app
        hosts, containers = await list_all_containers(app, all=True, host_ids=q.host_ids)
        sources = _sources(app)
        found = {h.id for h in hosts}
        for missing in sorted((q.host_ids or set()) - found):
            self.errors.append(
                {"host_id": missing, "code": "unknown_host", "message": "no such host"}
            )
        plan = []
        for host in hosts:
            source = sources.get(host.source)
            if source is None or not host.capabilities.logs:
                if q.host_ids is not None:  # asked for by name: say why it is left out
                    self.errors.append(
                        {"host_id": host.id, "code": "not_supported", "message": "no logs"}
                    )
                continue
            if host.status == "error":
                self.errors.append(
                    {"host_id": host.id, "code": "host_error", "message": host.error or "error"}
                )
                continue
            chosen = [
                c
                for c in containers
                if c.host_id == host.id
                and (q.containers is None or c.name in q.containers)
                and (q.project is None or c.labels.get(PROJECT_LABEL) == q.project)
            ]
            if chosen:
                plan.append((source, host, chosen))
        return plan

    async def run(self, plan: list[tuple[HostSource, HostInfo, list[ContainerSummary]]]) -> None:
        hosts = asyncio.Semaphore(self.limits.hosts)

        async def one_host(source: HostSource, host: HostInfo, chosen: list) -> None:
            async with hosts:
                gate = asyncio.Semaphore(self.limits.per_host)
                await asyncio.gather(*(self._guarded(source, host, c, gate) for c in chosen))

        await asyncio.gather(*(one_host(s, h, cs) for s, h, cs in plan))

    async def _guarded(
        self, source: HostSource, host: HostInfo, c: ContainerSummary, gate: asyncio.Semaphore
    ) -> None:
        async with gate:
            if self.stopped.is_set():
                return
            try:
                await self._read(source, host, c)
            except ApiError as exc:
                self.error(host.id, c.name, exc)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:  # a plugin bug stays that container's problem
                self.error(host.id, c.name, exc)

    async def _busy(self) -> None:
        # A full stream bound (the user's follows, the SSH target's channels) is waited
        # out, not reported: the search's wall time bounds the wait.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopped.wait(), 0.2)

    async def _read(self, source: HostSource, host: HostInfo, c: ContainerSummary) -> None:
        q, app = self.query, self.request.app
        opts = LogOptions(tail=None, timestamps=True, since=q.since, until=q.until)
        key, name, chars = host.id.partition(":")[2], c.name, self.limits.line_chars
        while not self.stopped.is_set():
            try:
                slot = stream_slot(self.request, "follow", host.id)
            except TooManyRequests:
                await self._busy()
                continue
            with slot:
                iterator = source.stream_logs(key, _ref(c), opts).__aiter__()
                try:
                    try:
                        first = await with_timeout(app, _first(iterator), "logs")
                    except TooManyRequests:
                        await self._busy()
                        continue
                    self.containers += 1
                    if first is not None:
                        await self._line(host.id, name, first, chars)
                    n = 0
                    async for line in iterator:
                        if line is None:
                            continue
                        if self.stopped.is_set() or not await self._line(
                            host.id, name, line, chars
                        ):
                            return
                        n += 1
                        if n % 1024 == 0:
                            await asyncio.sleep(0)  # buffered lines never yield: let others run
                    return
                finally:
                    # Cancelled (client gone, time up) or done: the engine connection or
                    # SSH channel (and its remote `docker logs`) is given back here.
                    aclose = getattr(iterator, "aclose", None)
                    if aclose is not None:
                        await asyncio.shield(aclose())

    async def _line(self, host_id: str, name: str, line: LogLine, chars: int) -> bool:
        """Match one line; False when the search must stop."""
        self.scanned += 1
        text = line.text[:chars]
        if self.query.matches(text):
            if self.matched >= self.query.limit:
                self.halt("limit")  # one match more than asked for: there are more
                return False
            self.matched += 1
            row = {"host_id": host_id, "container": name, "ts": line.ts}
            row |= {"stream": line.stream, "text": text}
            await self.out.put(json.dumps(row).encode() + b"\n")
        if self.scanned >= self.limits.max_scanned:
            self.halt("scanned")
            return False
        return True


async def _respond(request: web.Request, search: Search, plan: list) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": NDJSON,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Accel-Buffering": "no",
        }
    )
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + search.limits.seconds
    closing = request.app[STREAMS_KEY].closing
    runner = asyncio.ensure_future(search.run(plan))
    getter: asyncio.Future | None = None
    try:
        while True:
            if getter is None:
                getter = asyncio.ensure_future(search.out.get())
            remaining = deadline - loop.time()
            if remaining <= 0:
                search.halt("time")
                break
            await asyncio.wait(
                {getter, runner}, timeout=min(0.5, remaining), return_when="FIRST_COMPLETED"
            )
            if getter.done():
                batch = [getter.result()]
                getter = None
                while len(batch) < 64 and not search.out.empty():
                    batch.append(search.out.get_nowait())
                await resp.write(b"".join(batch))
                continue
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError("client gone")
            if closing.is_set():
                search.halt("shutdown")
                break
            if runner.done() and search.out.empty():
                break
        # Matches already found are still sent after a time stop.
        if getter is not None and getter.done():
            await resp.write(getter.result())
        while not search.out.empty():
            await resp.write(search.out.get_nowait())
        await resp.write(json.dumps(search.summary()).encode() + b"\n")
        await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the client went away: the finally below ends every reader at once
    finally:
        search.stopped.set()
        for task in (getter, runner):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(
            *(t for t in (getter, runner) if t is not None), return_exceptions=True
        )
    return resp


SEARCH_QUERY = (
    Param(
        "q",
        "The text to find (case-insensitive unless `case`), or a pattern with `regex`.",
        required=True,
    ),
    Param(
        "regex",
        "`q` is a Python regular expression (searched anywhere in the line).",
        type="boolean",
    ),
    Param("case", "Match case.", type="boolean"),
    Param("host", "Only these host ids (default: every host with logs).", repeated=True),
    Param("container", "Only containers with these names (exact).", repeated=True),
    Param("project", "Only containers of this compose project."),
    Param("since", "Only lines at or after this time: unix seconds or RFC 3339."),
    Param("until", "Only lines at or before this time: unix seconds or RFC 3339."),
    Param("limit", "Matches to send (1-10000, default 1000).", type="integer"),
)


@operation(
    "Search the logs of many containers on many hosts, streamed as NDJSON",
    description=(
        "One JSON object per line: each match as `{host_id, container, ts, stream, text}` "
        "(a result line is one with a `text` key), sent as soon as it is found; the last "
        "line is the summary, `{done: true, scanned, matched, containers, errors}` or "
        "`{truncated: true, reason, ...}` when a bound stopped the search (`limit`, "
        "`scanned`, `time`, `shutdown`). A host or container that fails is an entry of "
        "`errors`, not a failed search. Lines are matched (and sent) up to their first "
        "16 KiB; the text or pattern never leaves the server."
    ),
    tags=("logs",),
    query=SEARCH_QUERY,
    responses={200: Content(NDJSON, {"type": "string"}, "NDJSON: matches, then a summary.")},
    errors=(400,),
)
async def search_logs(request: web.Request) -> web.StreamResponse:
    limits = request.app[LIMITS_KEY]
    query = parse_query(request, limits)
    search = Search(request, query, limits)
    # The listing before any header: a failure there is still a JSON error.
    plan = await search.plan()
    return await _respond(request, search, plan)


@operation(
    "The log search page",
    tags=("ui",),
    responses={200: Content("text/html", None, "An HTML page.")},
)
@aiohttp_jinja2.template("core/log_search.html")
async def log_search_page(request: web.Request) -> dict[str, Any]:
    # The page fetches the hosts and the results itself; it renders only the frame.
    return {}


def setup_log_search_routes(app: web.Application) -> None:
    app[LIMITS_KEY] = SearchLimits.from_env()
    app.router.add_get("/api/logs/search", search_logs)
    app.router.add_get("/logs/search", log_search_page)
