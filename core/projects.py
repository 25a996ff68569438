"""Compose projects across hosts: ``GET /api/projects``, project-wide actions, the page.

A project is every container carrying the same ``com.docker.compose.project`` label,
on whichever hosts they run; its services come from ``com.docker.compose.service``.
Nothing is stored: the projects are grouped from the same listing as the all-hosts view
(:func:`.hosts.list_all_containers`), so they answer from the live state when it has
one, and a dead host's last known containers still count.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any, Literal

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from .auth import admin_only
from .container_routes import pydantic_json_response
from .containers import ContainerSummary, validate_ref
from .errors import ApiError, BadRequest, HostTimeout, NotFound
from .hosts import _bounded, list_all_containers
from .keys import SOURCES_KEY
from .live import LIVE_KEY
from .openapi import Content, Param, operation
from .resolve import with_timeout
from .sources import HostInfo

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# Compose's own rule for project names: lowercase letters, digits, dashes and
# underscores, starting with a letter or digit. Anything else is refused before any
# host is contacted (the name is never sent to a host, but it selects what is acted on).
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
PROJECT_ACTIONS: tuple[str, ...] = ("start", "stop", "restart")
# Actions of one project on one host at a time: an engine asked to stop fifty containers
# at once mostly queues them; a few in flight keep it busy without piling up timeouts.
PER_HOST_ACTIONS = 4

ProjectState = Literal["running", "partial", "stopped"]


class ProjectContainer(BaseModel):
    host_id: str
    id: str
    name: str
    state: str
    status: str = ""
    host_name: str = ""
    # False on hosts whose source cannot act (agent hosts): shown, never acted on.
    manageable: bool = False


class ProjectService(BaseModel):
    name: str  # "" when a container carries the project label but no service label
    containers: list[ProjectContainer]


class Project(BaseModel):
    name: str
    state: ProjectState
    hosts: list[str]
    services: list[ProjectService]
    # True when no container of the project is on a host that can act on it.
    read_only: bool


class ProjectResult(BaseModel):
    host_id: str
    id: str
    name: str
    ok: bool
    error: str | None = None
    # A container on a read-only host (an agent's): left alone, not a failure.
    skipped: bool = False


class ProjectActionAnswer(BaseModel):
    project: str
    action: str
    # Every container that was acted on succeeded (skipped ones do not count).
    ok: bool
    results: list[ProjectResult]


_PROJECTS = TypeAdapter(list[Project])


def project_state(states: Iterable[str]) -> ProjectState:
    """``running`` when every container runs, ``stopped`` when none does, else ``partial``
    (a paused or restarting container is not running)."""
    running = [s == "running" for s in states]
    if running and all(running):
        return "running"
    return "partial" if any(running) else "stopped"


def group_projects(hosts: list[HostInfo], containers: list[ContainerSummary]) -> list[Project]:
    """Compose projects of these containers, sorted by name; services by name, their
    containers by host then name. Containers without the project label are left out."""
    by_id = {h.id: h for h in hosts}
    grouped: dict[str, dict[str, list[ProjectContainer]]] = {}
    for c in containers:
        project = c.labels.get(PROJECT_LABEL)
        if not project:
            continue
        host = by_id.get(c.host_id)
        member = ProjectContainer(
            host_id=c.host_id,
            id=c.id,
            name=c.name,
            state=c.state,
            status=c.status,
            host_name=host.name if host else c.host_id,
            manageable=bool(host and host.capabilities.manage),
        )
        grouped.setdefault(project, {}).setdefault(c.labels.get(SERVICE_LABEL, ""), []).append(
            member
        )
    out = []
    for name in sorted(grouped):
        services = [
            ProjectService(
                name=service,
                containers=sorted(members, key=lambda m: (m.host_id, m.name, m.id)),
            )
            for service, members in sorted(grouped[name].items())
        ]
        members = [m for s in services for m in s.containers]
        out.append(
            Project(
                name=name,
                state=project_state(m.state for m in members),
                hosts=sorted({m.host_id for m in members}),
                services=services,
                read_only=not any(m.manageable for m in members),
            )
        )
    return out


def validate_project_name(name: str) -> str:
    if not PROJECT_NAME.fullmatch(name):
        raise BadRequest(
            "invalid project name: lowercase letters, digits, '-' and '_' "
            "(starting with a letter or digit), at most 128 characters",
            code="invalid_project",
            field="name",
        )
    return name


def validate_project_action(action: str) -> str:
    if action not in PROJECT_ACTIONS:
        raise BadRequest(
            f"unknown project action; expected one of: {', '.join(PROJECT_ACTIONS)}",
            code="invalid_action",
            field="action",
        )
    return action


def _host_filter(request: web.Request) -> set[str] | None:
    return set(request.query.getall("host", [])) or None


async def _projects(request: web.Request) -> list[Project]:
    hosts, containers = await list_all_containers(
        request.app, all=True, host_ids=_host_filter(request)
    )
    return group_projects(hosts, containers)


HOST_PARAM = Param("host", "Only these host ids (e.g. `docker:1`).", repeated=True)


@operation(
    "Compose projects across hosts, from the containers' compose labels",
    query=(HOST_PARAM,),
    responses={200: list[Project]},
)
async def projects_index(request: web.Request) -> web.Response:
    return pydantic_json_response(_PROJECTS, await _projects(request))


def _ref(member: ProjectContainer) -> str:
    """The id (unambiguous) when it is a valid ref, else the name; refused refs raise."""
    try:
        return validate_ref(member.id)
    except ApiError:
        return validate_ref(member.name)


@admin_only
@operation(
    "Start, stop or restart every container of a compose project",
    description="Each host's containers are acted on in parallel (a few at a time per "
    "host; stop too: compose's dependency order is not known here), each call under the "
    "per-host timeout; after a timeout, that host's other containers are not tried. The "
    "answer lists every container's result; one failure does not stop the others, and "
    "containers on read-only hosts (agents) are listed as skipped.",
    path=(
        Param("name", "The compose project name (`^[a-z0-9][a-z0-9_-]{0,127}$`)."),
        Param("action", "What to do.", enum=PROJECT_ACTIONS),
    ),
    query=(HOST_PARAM,),
    responses={200: ProjectActionAnswer},
    errors=(400,),
)
async def project_action(request: web.Request) -> web.Response:
    name = validate_project_name(request.match_info["name"])
    action = validate_project_action(request.match_info["action"])
    project = next((p for p in await _projects(request) if p.name == name), None)
    if project is None:
        raise NotFound(f"unknown project {name!r}", code="unknown_project")
    members = [m for s in project.services for m in s.containers]
    results = await act_on(request.app, members, action)
    acted = [r for r in results if not r.skipped]
    answer = ProjectActionAnswer(
        project=name, action=action, ok=all(r.ok for r in acted), results=results
    )
    return web.json_response(answer.model_dump(mode="json"))


async def act_on(
    app: web.Application, members: list[ProjectContainer], action: str
) -> list[ProjectResult]:
    """Run ``action`` on each container: at most ``PER_HOST_ACTIONS`` per host and the
    app's fan-out bound overall, each under the per-host timeout (after one timeout the
    host's other containers are not tried). Never raises: every container gets its own
    result, in the order given."""
    sources = app[SOURCES_KEY]
    overall = _bounded(app)
    per_host: dict[str, asyncio.Semaphore] = {}
    # Hosts that let a call time out in this fan-out: their remaining containers are not
    # tried, so a dead host costs one timeout, not one per few of its containers.
    silent: dict[str, str] = {}

    async def one(member: ProjectContainer) -> ProjectResult:
        result = ProjectResult(host_id=member.host_id, id=member.id, name=member.name, ok=False)
        if not member.manageable:
            result.skipped, result.error = True, "read-only host: left alone"
            return result
        source_name, _, key = member.host_id.partition(":")
        source = sources.get(source_name)
        if source is None:
            result.error = f"unknown source {source_name!r}"
            return result
        gate = per_host.setdefault(member.host_id, asyncio.Semaphore(PER_HOST_ACTIONS))
        try:
            ref = _ref(member)
            async with gate:
                if member.host_id in silent:
                    result.error = f"not tried: {silent[member.host_id]}"
                    return result
                await overall(with_timeout(app, source.action(key, ref, action), action))
        except HostTimeout as exc:
            silent.setdefault(member.host_id, f"the host did not answer ({exc.message})")
            result.error = exc.message
        except ApiError as exc:
            result.error = exc.message
        except Exception as exc:  # a plugin bug stays that container's problem
            result.error = f"{type(exc).__name__}: {exc}"
        else:
            result.ok = True
        return result

    results = list(await asyncio.gather(*(one(m) for m in members)))
    live = app.get(LIVE_KEY)
    if live is not None:
        # Like a single container's action: the answer and the next list agree without
        # waiting for the events (each changed host listed once, all at once).
        changed = {r.host_id for r in results if r.ok}
        await asyncio.gather(
            *(live.refresh(sources[h.partition(":")[0]], h) for h in sorted(changed))
        )
    return results


@operation(
    "The Projects page", tags=("ui",), responses={200: Content("text/html", None, "An HTML page.")}
)
@aiohttp_jinja2.template("core/projects.html")
async def projects_page(request: web.Request) -> dict[str, Any]:
    # The page fetches /api/projects itself; it renders only the frame.
    return {}


def setup_project_routes(app: web.Application) -> None:
    app.router.add_get("/api/projects", projects_index)
    # [^/]+: aiohttp's default placeholder refuses braces, which would make such a name a
    # 404; every bad name must get validate_project_name's 400.
    app.router.add_post("/api/projects/{name:[^/]+}/{action:[^/]+}", project_action)
    app.router.add_get("/projects", projects_page)
