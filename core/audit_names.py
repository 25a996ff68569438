"""Which requests the audit middleware records, and the stable dotted name of each.

Recorded: every POST/PUT/PATCH/DELETE under ``/api/`` and the form ``/login`` and
``/logout``, except what is not a change made by a person (:data:`EXCLUDED`): the agent
report ingest (token-gated, one per host every few seconds) and connection tests and
host-key scans (``.../test``, ``.../scan-host-key``: they read, they change nothing).

Names: the known routes are in :data:`KNOWN`; container and project actions are
``container.<action>`` and ``project.<action>``; any other (plugin) route gets a
generic name from its template: its literal segments after ``/api/`` joined by dots,
plus ``create``/``update``/``delete`` for POST on a collection, PUT/PATCH and DELETE
(``POST /api/widgets`` -> ``widgets.create``, ``POST /api/widgets/{id}/reset`` ->
``widgets.reset``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .auth import current_user
from .containers import ACTIONS

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_ROUTES = frozenset({"/login", "/logout"})
EXCLUDED_TEMPLATES = frozenset({"/api/agents/docker/report"})
EXCLUDED_SUFFIXES = ("/test", "/scan-host-key")
EXCLUDED = (*sorted(EXCLUDED_TEMPLATES), *(f"*{s}" for s in EXCLUDED_SUFFIXES))

# (method, route template) -> action.
KNOWN: dict[tuple[str, str], str] = {
    ("POST", "/login"): "login",
    ("POST", "/api/auth/login"): "login",
    ("POST", "/logout"): "logout",
    ("POST", "/api/auth/logout"): "logout",
    ("POST", "/api/auth/password"): "password.change",
    ("POST", "/api/users"): "user.create",
    ("PATCH", "/api/users/{username}"): "user.update",
    ("DELETE", "/api/users/{username}"): "user.delete",
    ("POST", "/api/tokens"): "token.create",
    ("DELETE", "/api/tokens/{id}"): "token.revoke",
    ("POST", "/api/ssh/targets"): "ssh_target.create",
    ("PATCH", "/api/ssh/targets/{id}"): "ssh_target.update",
    ("DELETE", "/api/ssh/targets/{id}"): "ssh_target.delete",
    ("POST", "/api/docker/hosts"): "docker_host.create",
    ("PATCH", "/api/docker/hosts/{id}"): "docker_host.update",
    ("DELETE", "/api/docker/hosts/{id}"): "docker_host.delete",
    ("POST", "/api/agents/docker/enrollments"): "enrollment.create",
    ("DELETE", "/api/agents/docker/enrollments/{host}"): "enrollment.revoke",
    ("POST", "/api/agents/docker/enrollments/{host}/token"): "enrollment.token",
    ("POST", "/api/agents/docker/ssh-install"): "agent.ssh_install",
    ("DELETE", "/api/agents/docker/hosts/{host}"): "agent_host.delete",
    ("POST", "/api/alerts/channels"): "alert_channel.create",
    ("PATCH", "/api/alerts/channels/{id}"): "alert_channel.update",
    ("DELETE", "/api/alerts/channels/{id}"): "alert_channel.delete",
    ("POST", "/api/alerts/rules"): "alert_rule.create",
    ("PATCH", "/api/alerts/rules/{id}"): "alert_rule.update",
    ("DELETE", "/api/alerts/rules/{id}"): "alert_rule.delete",
    ("POST", "/api/alerts/rules/{id}/snooze"): "alert_rule.snooze",
}
# Route trees whose placeholder is a host key of one source: (prefix, placeholder, source).
HOST_TREES = (
    ("/api/docker/hosts", "id", "docker"),
    ("/api/docker-ssh/hosts", "id", "ssh"),
    ("/api/ssh/targets", "id", "ssh"),
    ("/api/agents/docker/hosts", "host", "agent"),
    ("/api/agents/docker/enrollments", "host", "agent"),
)
# Identifying keys a created object's JSON answer may give (never its secret fields).
RESPONSE_KEYS = ("id", "name", "username", "host")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
_PLACEHOLDER = re.compile(r"^\{(\w+)")


def template_of(request: web.Request) -> str | None:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return None
    info = resource.get_info()
    return info.get("path") or info.get("formatter")


def generic_name(method: str, template: str) -> str:
    segments = [s for s in template.removeprefix("/api/").split("/") if s]
    literal = [s.replace("-", "_") for s in segments if not s.startswith("{")]
    on_item_action = (
        method == "POST" and segments and not segments[-1].startswith("{") and len(literal) > 1
    ) and any(s.startswith("{") for s in segments)
    name = ".".join(literal) or "api"
    if not on_item_action:
        name += "." + _VERBS.get(method, method.lower())
    return name[:64]


@dataclass
class Described:
    """What the middleware knows about a request before its handler runs."""

    method: str
    template: str
    base: str | None
    container: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    source: str | None = None
    signed_in: bool = False

    def action(self, result: str) -> str | None:
        if self.base == "login" and result != "ok":
            return "login.failed"
        if self.base == "logout" and not self.signed_in:
            return None  # no session ended: nothing happened
        return self.base

    def host_id(self, response: web.StreamResponse | None) -> str | None:
        if self.host is not None:
            return self.host
        if self.source is not None:
            answer = _json_answer(response)
            created = answer.get("id", answer.get("host"))
            if isinstance(created, int | str) and not isinstance(created, bool):
                return f"{self.source}:{created}"
        return None

    def from_response(self, response: web.StreamResponse | None) -> dict[str, Any]:
        if self.method != "POST" or self.base is None or not self.base.endswith(".create"):
            return {}
        answer = _json_answer(response)
        return {k: answer[k] for k in RESPONSE_KEYS if isinstance(answer.get(k), str | int)}


def _json_answer(response: web.StreamResponse | None) -> dict[str, Any]:
    if not isinstance(response, web.Response) or response.status >= 400:
        return {}
    if response.content_type != "application/json" or not isinstance(response.body, bytes):
        return {}
    if len(response.body) > 64 * 1024:
        return {}
    try:
        answer = json.loads(response.body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def describe(request: web.Request) -> Described | None:
    """What to record for this request, or None when it is not audited."""
    method = request.method
    if method not in AUDITED_METHODS:
        return None
    path = request.path
    if not (path.startswith("/api/") or path in FORM_ROUTES):
        return None
    template = template_of(request)
    if template is None or template in EXCLUDED_TEMPLATES or template.endswith(EXCLUDED_SUFFIXES):
        return None
    match = request.match_info
    out = Described(method, template, KNOWN.get((method, template)))
    out.signed_in = current_user(request) is not None
    if template.endswith("/containers/{ref}/{action}"):
        act = match.get("action", "")
        out.base = "container." + (act if act in ACTIONS else "invalid")
        out.container = match.get("ref", "")[:256]
    elif template == "/api/projects/{name}/{action}":
        act = match.get("action", "")
        out.base = "project." + (act if act in ("start", "stop", "restart") else "invalid")
        out.detail["project"] = match.get("name", "")
    elif out.base is None:
        out.base = generic_name(method, template)
    if "host_id" in match:
        out.host = match["host_id"]
    else:
        for prefix, placeholder, source in HOST_TREES:
            if template == prefix or template.startswith(prefix + "/"):
                if placeholder in match:
                    out.host = f"{source}:{match[placeholder]}"
                elif template == prefix and method == "POST":
                    out.source = source  # a create: the new id comes in the answer
                break
    # The other path parameters (a username, a token id): names and ids.
    for key, value in match.items():
        if key not in ("ref", "action", "host_id", "name", "id", "host"):
            out.detail[key] = value[:128]
        elif key in ("id", "name") and out.host is None and out.base and "project" not in out.base:
            out.detail[key] = value[:128]
    return out
