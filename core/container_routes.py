"""The container routes of one URL tree: list, detail, stats sample, logs (and their
download), actions (and the exec socket). The unified tree and every per-source alias are
built by the same ``add_container_routes``, so they behave identically and live in one
place."""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from .containers import (
    ACTIONS,
    ContainerDetail,
    ContainerSummary,
    LogLine,
    Stats,
    iso_utc,
    validate_action,
    validate_ref,
)
from .exec_bridge import make_exec_handler
from .live import LIVE_KEY
from .log_stream import download_logs, download_options, log_options, stream_logs
from .openapi import Content, Param, operation
from .query import flag
from .resolve import SourceResolver, source_resolver, with_timeout
from .stats_routes import make_history_handler
from .timeline_routes import make_timeline_handler

# Lists are serialised straight to JSON bytes by pydantic-core: a listing is the hottest
# route (the page refreshes it for every host), and model_dump + json.dumps cost several
# times more per row.
_SUMMARIES = TypeAdapter(list[ContainerSummary])


def pydantic_json_response(adapter: TypeAdapter, value: Any) -> web.Response:
    return web.Response(
        body=adapter.dump_json(value), content_type="application/json", charset="utf-8"
    )


class LogLines(BaseModel):
    lines: list[LogLine]


class ContainerStats(BaseModel):
    """One stats sample of a container, apart from its detail (which answers from
    inspect alone). ``stats`` is null when the container is not up (not running, paused
    or restarting). ``at``: when the server answered (ISO 8601 UTC); on an agent host
    the sample is the one of the host's last report."""

    stats: Stats | None
    at: str


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
DOWNLOAD_PARAMS = (
    Param("since", "Only lines at or after this time: unix seconds or RFC 3339."),
    Param("until", "Only lines at or before this time: unix seconds or RFC 3339."),
    Param("tail", "Only the last lines (default: the whole log).", type="integer"),
    Param("timestamps", "Prefix each line with its time (ISO 8601 UTC).", type="boolean"),
)
SSE_LOGS = Content(
    "text/event-stream",
    {"type": "string"},
    "With `follow=1`: server-sent events; each `data:` is a LogLine as JSON; "
    "`event: error` carries an Error, `event: end` closes the stream.",
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
            request.app, source.list_containers(key, all=flag(request, "all")), "list"
        )
        return pydantic_json_response(_SUMMARIES, items)

    @operation(
        "One container in detail (env values that look secret are masked)",
        description=(
            "Answers from inspect alone. `stats` is null on docker and ssh hosts, whose "
            "sample takes the host a second or more: it is at `.../stats`. Agent hosts "
            "include the sample of their last report (stored, so it costs nothing)."
        ),
        responses={200: ContainerDetail},
        errors=(400, 502, 504),
    )
    async def get_container(request: web.Request) -> web.Response:
        ref = validate_ref(request.match_info["ref"])
        source, key = await resolve(request)
        detail = await with_timeout(request.app, source.get_container(key, ref), "inspect")
        return web.json_response(detail.model_dump(mode="json"))

    @operation(
        "One stats sample of a container (CPU, memory, network, block I/O, pids)",
        description=(
            "Taken now on docker and ssh hosts (about a second or two: the CPU share "
            "needs two readings); the last report's on agent hosts. `stats` is null when "
            "the container is not up; 501 for a source without stats."
        ),
        responses={200: ContainerStats},
        errors=(400, 501, 502, 504),
    )
    async def container_stats(request: web.Request) -> web.Response:
        ref = validate_ref(request.match_info["ref"])
        source, key = await resolve(request)
        sample = await with_timeout(request.app, source.stats(key, ref), "stats")
        body = ContainerStats(stats=sample, at=iso_utc(time.time()) or "")
        return web.json_response(body.model_dump(mode="json"))

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
        if flag(request, "follow"):
            return await stream_logs(request, source, key, ref, opts)
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
        "A container's logs as a file, streamed from the host as it reads them",
        query=DOWNLOAD_PARAMS,
        responses={
            200: Content(
                "text/plain",
                {"type": "string"},
                "An attachment (`Content-Disposition`), one line per log line; a transfer "
                "cut short (host failed or went silent) ends without its final chunk.",
            )
        },
        errors=(400, 429, 501, 502, 504),
    )
    async def download_container_logs(request: web.Request) -> web.StreamResponse:
        ref = validate_ref(request.match_info["ref"])
        opts = download_options(request)
        source, key = await resolve(request)
        return await download_logs(request, source, key, ref, opts)

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
            source.action(key, ref, action, force=flag(request, "force")),
            action,
        )
        live = request.app.get(LIVE_KEY)
        if live is not None:  # the next list shows the change without waiting for its event
            await live.refresh(source, source.host_id(key))
        return web.json_response({"ok": True, "action": action, "container": ref})

    app.router.add_get(prefix + "/containers", list_containers)
    # {ref:[^/]+}: aiohttp's default placeholder refuses braces, which would turn a bad
    # ref like "--format={{json .}}" into a 404; every bad ref must get validate_ref's 400.
    ref = "{ref:[^/]+}"
    app.router.add_get(prefix + f"/containers/{ref}", get_container)
    app.router.add_get(prefix + f"/containers/{ref}/stats", container_stats)
    app.router.add_get(prefix + f"/containers/{ref}/stats/history", make_history_handler(resolve))
    app.router.add_get(prefix + f"/containers/{ref}/timeline", make_timeline_handler(resolve))
    app.router.add_get(prefix + f"/containers/{ref}/logs", container_logs)
    app.router.add_get(prefix + f"/containers/{ref}/logs/download", download_container_logs)
    app.router.add_post(prefix + f"/containers/{ref}/{{action}}", container_action)
    if exec_path is not None:
        app.router.add_get(exec_path, make_exec_handler(resolve))
