"""HTTP routes. No auth code here: the core's route-table policy makes the GETs
viewer-only and the POST admin-only, and that cannot be forgotten per handler."""

from __future__ import annotations

import re
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from archnest import DB_KEY, BadRequest, current_user, require_json, validate_ref
from sqlmodel import col, select

from .models import ExampleNote

HOST_ID = re.compile(r"^[a-z0-9_-]{1,32}:[A-Za-z0-9_.-]{1,200}$")
MAX_TEXT = 2000
MAX_BODY = 16 * 1024


def _host_id(value: Any) -> str:
    if not isinstance(value, str) or not HOST_ID.match(value):
        raise BadRequest("host_id must look like '<source>:<key>'", code="bad_host_id")
    return value


async def _notes(request: web.Request) -> list[ExampleNote]:
    query = select(ExampleNote).order_by(col(ExampleNote.id).desc()).limit(200)
    if request.query.get("host"):
        query = query.where(ExampleNote.host_id == _host_id(request.query["host"]))
    if request.query.get("container"):
        query = query.where(ExampleNote.container == validate_ref(request.query["container"]))
    async with request.app[DB_KEY].session() as session:
        return list((await session.exec(query)).all())


async def list_notes(request: web.Request) -> web.Response:
    return web.json_response([n.as_json() for n in await _notes(request)])


async def add_note(request: web.Request) -> web.Response:
    data = await require_json(request, MAX_BODY)
    text = data.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise BadRequest(f"text must be 1-{MAX_TEXT} characters", code="bad_text")
    user = current_user(request)
    note = ExampleNote(
        host_id=_host_id(data.get("host_id")),
        container=validate_ref(str(data.get("container", ""))),
        text=text.strip(),
        author=user.username if user else "",
    )
    async with request.app[DB_KEY].session() as session:
        session.add(note)
        await session.commit()
        await session.refresh(note)
    return web.json_response(note.as_json(), status=201)


async def notes_page(request: web.Request) -> web.Response:
    # ``?partial=1`` is what the container panel loads (htmx): the list without the shell.
    template = "example/notes_list.html" if request.query.get("partial") else "example/notes.html"
    context = {
        "notes": await _notes(request),
        "host": request.query.get("host", ""),
        "container": request.query.get("container", ""),
    }
    return aiohttp_jinja2.render_template(template, request, context)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/example/notes", list_notes)
    app.router.add_post("/api/example/notes", add_note)
    app.router.add_get("/example/notes", notes_page)
