"""Enrollment routes (per-host agent tokens), the agent files this server ships, and
"Install agent over SSH" (docs/docker-agent-monitoring.md, "Enrollment")."""

from __future__ import annotations

import re
import shlex
from functools import cache
from importlib import resources
from typing import Literal

from aiohttp import web
from archnest import (
    BadRequest,
    Content,
    FeatureDisabled,
    RowId,
    admin_only,
    operation,
    plugin_settings,
    public,
    read_model,
)
from pydantic import BaseModel, ConfigDict, Field

from .enrollments import ENROLLMENTS_KEY
from .payload import HOST_PATTERN
from .settings import AgentSettings
from .ssh_install import DOCKER_HOST_PATTERN, install_over_ssh
from .store import utc_naive

PREFIX = "/api/agents/docker/enrollments"
SCRIPT_NAME = "archnest-docker-agent.sh"
UNIT_NAME = "archnest-docker-agent.service"
# The same shape the agent accepts for ARCHNEST_URL (it checks again before writing).
BASE_URL_RE = re.compile(r"^https?://[][A-Za-z0-9._:-]+(/[A-Za-z0-9._~/-]*)?$")
HostName = Field(pattern=HOST_PATTERN, max_length=253)


class EnrollmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = HostName


class EnrollmentCreated(BaseModel):
    host: str
    token: str = Field(description="Shown once; only its SHA-256 is stored.")
    install_command: str = Field(
        description="Downloads the agent from this server and runs its --install."
    )


class EnrollmentEntry(BaseModel):
    host: str
    created_at: str
    token_issued_at: str
    last_report_at: str | None
    revoked: bool
    revoked_at: str | None
    status: Literal["ok", "stale", "never", "revoked"]


class SshInstall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_id: RowId = Field(description="The SSH target to install on.")
    host: str | None = Field(
        None,
        pattern=HOST_PATTERN,
        max_length=253,
        description="Host name to enroll; default: derived from the target's name.",
    )
    docker_host: str | None = Field(
        None,
        pattern=DOCKER_HOST_PATTERN,
        max_length=512,
        description="The engine the agent reads: `unix:///absolute/path` or `tcp://host:port`.",
    )
    interval: int | None = Field(None, ge=1, le=86400, description="Seconds between reports.")


class SshInstalled(BaseModel):
    host: str
    installed: bool
    output: str


@cache
def agent_file(name: str) -> bytes:
    """A file the plugin package ships (``files/``): the one copy there is."""
    return (resources.files(__package__) / "files" / name).read_bytes()


def server_url(request: web.Request) -> str:
    """The base URL agents reach this server at: the setting, else the origin the
    admin's browser used, else the request's own scheme and Host."""
    configured = plugin_settings(request.app, AgentSettings).server_url
    if configured:
        url = configured.rstrip("/")
        if not BASE_URL_RE.fullmatch(url):
            raise FeatureDisabled(
                "ARCHNEST_AGENT_SERVER_URL is not an http(s)://host[:port][/path] URL",
                code="bad_server_url",
            )
        return url
    origin = request.headers.get("Origin")
    url = origin if origin and origin != "null" else f"{request.scheme}://{request.host}"
    if not BASE_URL_RE.fullmatch(url):
        raise BadRequest(
            "cannot tell this server's address from the request: set ARCHNEST_AGENT_SERVER_URL",
            code="server_url_unknown",
        )
    return url


def install_command(base_url: str, token: str, host: str) -> str:
    """The shell command an admin runs on the host (every value quoted; all of them
    match strict patterns anyway). A fresh temp file, not a fixed /tmp name another
    local user could have planted."""
    q = shlex.quote
    return (
        f'f=$(mktemp) && curl -fsSL {q(base_url + "/agent/" + SCRIPT_NAME)} -o "$f" && '
        f"sudo ARCHNEST_URL={q(base_url)} ARCHNEST_AGENT_TOKEN={q(token)} "
        f'ARCHNEST_AGENT_HOSTNAME={q(host)} bash "$f" --install; rm -f "$f"'
    )


def _path_host(request: web.Request) -> str:
    host = request.match_info["host"]
    if not re.fullmatch(HOST_PATTERN, host):
        raise BadRequest("invalid agent host name", code="invalid_host")
    return host


@operation(
    "Enroll an agent host: its own token, shown once, and the install command",
    request=EnrollmentCreate,
    responses={201: EnrollmentCreated},
    errors=(409,),
)
async def create_enrollment(request: web.Request) -> web.Response:
    """POST /api/agents/docker/enrollments (admin)."""
    body = await read_model(request, EnrollmentCreate, 4096)
    base = server_url(request)
    token = await request.app[ENROLLMENTS_KEY].create(body.host)
    answer = {
        "host": body.host,
        "token": token,
        "install_command": install_command(base, token, body.host),
    }
    return web.json_response(answer, status=201)


@admin_only  # not secret, but the list of hosts is an admin's business (Settings)
@operation("Enrolled agent hosts (never a token)", responses={200: list[EnrollmentEntry]})
async def list_enrollments(request: web.Request) -> web.Response:
    """GET /api/agents/docker/enrollments (admin)."""
    stale = plugin_settings(request.app, AgentSettings).stale_seconds
    now = utc_naive()
    rows = await request.app[ENROLLMENTS_KEY].list()
    return web.json_response([r.view(stale, now) for r in rows])


@operation(
    "Revoke a host's agent token (its last report stays)",
    responses={204: None},
    errors=(400,),
)
async def revoke_enrollment(request: web.Request) -> web.Response:
    """DELETE /api/agents/docker/enrollments/{host} (admin): the token gets 401 from now
    on (other replicas: within a few seconds, see the docs)."""
    await request.app[ENROLLMENTS_KEY].revoke(_path_host(request))
    return web.Response(status=204)


@operation(
    "Re-issue a host's agent token (the old one stops working; a revoked host is enrolled again)",
    responses={200: EnrollmentCreated},
    errors=(400,),
)
async def reissue_token(request: web.Request) -> web.Response:
    """POST /api/agents/docker/enrollments/{host}/token (admin)."""
    host = _path_host(request)
    base = server_url(request)
    token = await request.app[ENROLLMENTS_KEY].reissue(host)
    answer = {"host": host, "token": token, "install_command": install_command(base, token, host)}
    return web.json_response(answer)


@operation(
    "Install the agent on an SSH target, enrolled with its own token",
    description="Enrolls the host (or re-issues its token) and runs the installer through "
    "the target's pinned SSH connection: the script and its settings go over stdin, the "
    "command text is fixed by the server.",
    request=SshInstall,
    responses={200: SshInstalled},
    errors=(404, 429, 502, 504),
)
async def ssh_install(request: web.Request) -> web.Response:
    """POST /api/agents/docker/ssh-install (admin)."""
    body = await read_model(request, SshInstall, 4096)
    base = server_url(request)
    result = await install_over_ssh(
        request.app,
        target_id=body.target_id,
        host=body.host,
        docker_host=body.docker_host,
        interval=body.interval,
        base_url=base,
        script=agent_file(SCRIPT_NAME),
    )
    return web.json_response(result)


def _file_response(name: str, media_type: str) -> web.Response:
    return web.Response(
        body=agent_file(name),
        content_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@public  # fetched by `curl` on a host that has no account here; holds no secret
@operation(
    "The agent script this server ships",
    responses={200: Content("text/x-shellscript", {"type": "string"}, "The bash agent.")},
)
async def agent_script(request: web.Request) -> web.Response:
    """GET /agent/archnest-docker-agent.sh."""
    return _file_response(SCRIPT_NAME, "text/x-shellscript")


@public
@operation(
    "The agent's systemd unit (downloaded by the script's --install)",
    responses={200: Content("text/plain", {"type": "string"}, "A systemd service unit.")},
)
async def agent_unit(request: web.Request) -> web.Response:
    """GET /agent/archnest-docker-agent.service."""
    return _file_response(UNIT_NAME, "text/plain")


def setup_enroll_routes(app: web.Application) -> None:
    app.router.add_post(PREFIX, create_enrollment)
    app.router.add_get(PREFIX, list_enrollments)
    app.router.add_delete(PREFIX + "/{host}", revoke_enrollment)
    app.router.add_post(PREFIX + "/{host}/token", reissue_token)
    app.router.add_post("/api/agents/docker/ssh-install", ssh_install)
    app.router.add_get("/agent/" + SCRIPT_NAME, agent_script)
    app.router.add_get("/agent/" + UNIT_NAME, agent_unit)
