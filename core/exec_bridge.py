"""The exec WebSocket: a source's ExecSession bridged to the browser's terminal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from .audit import TerminalAudit
from .auth import websocket
from .containers import validate_ref
from .errors import ApiError, BadRequest
from .log_stream import stream_slot
from .openapi import Param, operation
from .query import int_query
from .recordings import start_recording
from .resolve import SourceResolver, with_timeout
from .sources import ExecSession


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
        cols = int_query(request, "cols", 80, 10, 1000) or 80
        rows = int_query(request, "rows", 24, 5, 1000) or 24
        ws = web.WebSocketResponse(heartbeat=30)
        if not ws.can_prepare(request).ok:
            # Nothing may start on the host for a request that cannot become a terminal.
            raise BadRequest("this route needs a WebSocket upgrade", code="websocket_required")
        with stream_slot(request, "terminal", source.host_id(key)) as slot:
            await ws.prepare(request)
            slot.on_shutdown(lambda: ws.close(code=1001, message=b"server shutting down"))
            terminal = TerminalAudit(request, source.host_id(key), ref, cmd_name)
            try:
                session = await with_timeout(
                    request.app,
                    source.exec(key, ref, SHELLS[cmd_name], cols=cols, rows=rows),
                    "exec",
                )
            except ApiError as exc:
                await terminal.open(result=exc.code)
                reason = exc.message.encode()[:120]
                await ws.close(code=4000 + exc.status, message=reason)
                return ws
            recording = await start_recording(
                request, source.host_id(key), ref, SHELLS[cmd_name], cols, rows
            )
            await terminal.open(recording_id=recording.id if recording else None)
            session = terminal.wrap(recording.wrap(session) if recording else session)
            ended = asyncio.Event()

            async def end_at_shutdown() -> None:
                await ws.close(code=1001, message=b"server shutting down")
                await ended.wait()  # until the session (and its process) is closed

            slot.on_shutdown(end_at_shutdown)
            try:
                await _bridge(ws, session)
            finally:
                ended.set()
                if recording is not None:
                    await asyncio.shield(recording.close())
                await terminal.close()
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
