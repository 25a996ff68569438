"""Schemathesis against the live app: every operation of GET /api/openapi.json, with an
admin API token, answers no 500 and only what its document says (status, media type,
body schema, headers).

The real app is served on a loopback port by aiohttp's test server, with real objects
behind its routes first: a docker engine on the test dockerd, an SSH target (docker over
SSH) on the test sshd, an agent report, and a container on the dockerd. Each operation
runs with generated path parameters (mostly unknown objects: the 400/404 paths), with
the real objects' (the success paths) and, when it takes a body or a query, with
off-schema input. Reads run first, changes after them, container actions and the
deletion of the configured hosts last. Generated requests run in a thread
(schemathesis calls are blocking) while the event loop serves them.

What the generator may not do, each with its reason, is in EXCLUDED and _narrow().
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from archnest import Settings
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from tests.agent.payloads import make_report
from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv

AGENT_TOKEN = "agent-token-schemathesis-0123456789"
# Small on purpose: about 50 operations, up to three passes each, in about a minute.
MAX_EXAMPLES = 6
CALL_TIMEOUT = 30.0


def no_internal_error(ctx: Any, response: Any, case: Any) -> None:
    """A 500 is a bug. 501-504 are this API's answers for a read-only source, a host
    error, a disabled feature and a host timeout: allowed where the operation documents
    them, which status_code_conformance checks."""
    if response.status_code == 500 or response.status_code > 504:
        raise AssertionError(f"server error {response.status_code}: {response.text[:300]}")


CHECKS = [
    no_internal_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.response_headers_conformance,
]

# (method, path) -> why the generator does not call it.
EXCLUDED: dict[tuple[str, str], str] = {
    # WebSockets: a plain HTTP GET is refused before the upgrade; the terminal is covered
    # by tests/docker_tcp, tests/ssh and tests/security with real WebSocket clients.
    ("GET", "/api/exec"): "WebSocket",
    ("GET", "/api/docker/exec"): "WebSocket",
    ("GET", "/api/docker-ssh/exec"): "WebSocket",
    # An endless server-sent event stream: tests/core/test_live.py reads it for real.
    ("GET", "/api/events"): "endless stream",
}
# Sign-out ends the session of the cookie it is sent with. The run authenticates with a
# bearer token, so only generated cookies are at stake; sign-out still runs after
# everything else, so that no operation after it could lose its credentials.
LAST: set[tuple[str, str]] = {("POST", "/logout"), ("POST", "/api/auth/logout")}


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    # Agent ingest on, so POST /api/agents/docker/report is checked past its 503.
    archnest_settings.plugin_env["ARCHNEST_AGENT_TOKEN"] = AGENT_TOKEN
    return archnest_settings


def _narrow(doc: dict[str, Any], env: TestEnv) -> dict[str, Any]:
    """The document as the generator may use it: traffic goes only to loopback, and no
    request holds a stream open.

    - An engine ``url`` or a target ``host``/``port`` would otherwise be any string, and
      the next host listing would connect to it: they are limited to the test dockerd
      and sshd and to closed loopback ports (the validation of other values is tested in
      tests/docker_tcp and tests/ssh).
    - ``follow`` turns a logs request into a stream that lasts as long as the container
      (tests/abuse/test_stream_bounds covers it).
    """
    doc = copy.deepcopy(doc)
    schemas = doc["components"]["schemas"]
    urls = [env.docker_tcp_url, env.docker_unix_url, "tcp://127.0.0.1:1", "unix:///nonexistent"]
    for name in ("EngineCreate", "EngineUpdate", "EngineTest"):
        schemas[name]["properties"]["url"] = {"type": "string", "enum": urls}
    for name in ("SshTargetCreate", "SshTargetUpdate", "SshTargetTest", "HostKeyScanRequest"):
        props = schemas[name]["properties"]
        props["host"] = {"type": "string", "enum": ["127.0.0.1"]}
        props["port"] = {"type": "integer", "enum": [env.ssh_target.port, 1]}
    # A channel's URL: closed loopback ports only (a test notice would send to it).
    hooks = ["http://127.0.0.1:1/hook", "json://127.0.0.1:1/apprise"]
    for name in ("ChannelCreate", "ChannelUpdate"):
        schemas[name]["properties"]["url"] = {"type": "string", "enum": hooks}
    for item in doc["paths"].values():
        for op in item.values():
            params = op.get("parameters", [])
            op["parameters"] = [p for p in params if p["name"] != "follow"]
    return doc


def _order(method: str, path: str) -> int:
    # Reads first, then changes, deletions of configured hosts last: a PATCH or DELETE
    # with the real ids must not take the hosts away from the operations after it.
    if method == "GET":
        return 0
    if method in ("POST", "PATCH") and not path.endswith("{action}"):
        return 1
    if path.endswith("{action}"):
        return 2
    return 3


class Run:
    """What the generated requests found: problems, and the statuses each pass saw."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.problems: list[str] = []
        self.statuses: dict[tuple[str, str], list[int]] = {}

    def operation(
        self,
        op: Any,
        headers: dict[str, str],
        path_parameters: dict[str, Any] | None = None,
        mode: GenerationMode = GenerationMode.POSITIVE,
    ) -> None:
        label = f"{op.method.upper()} {op.path}"
        where = "real objects" if path_parameters else "generated"
        if mode is GenerationMode.NEGATIVE:
            where += ", off-schema"
        statuses = self.statuses.setdefault((label, where), [])
        seen: set[str] = set()

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases on every run: a failure reproduces
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        def run(case: Any) -> None:
            response = case.call(base_url=self.base_url, headers=headers, timeout=CALL_TIMEOUT)
            statuses.append(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # record it, go on with the rest
                text = str(exc).strip()
                key = text.splitlines()[0] if text else repr(exc)
                if key not in seen:
                    seen.add(key)
                    self.problems.append(f"{label} ({where}): {text[:2000]}")

        run()


def _real_params(path: str, real: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The real objects' path parameters for this path, or None when it has none."""
    for prefix, params in real.items():
        if path.startswith(prefix):
            names = {p for p in params if "{" + p + "}" in path}
            return {k: params[k] for k in names} or None
    return None


def _operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


async def _setup_objects(client: Any, headers: dict[str, str], env: TestEnv) -> dict[str, Any]:
    """An engine, a docker-over-SSH target, an agent report, a container, an alert
    channel and an alert rule."""
    container = f"st-{secrets.token_hex(3)}"
    # A shell that exits on SIGTERM: stop and restart with the real container are quick.
    env.run_container(container, ("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"))
    r = await client.post(
        "/api/docker/hosts", json={"name": "st-engine", "url": env.docker_tcp_url}, headers=headers
    )
    assert r.status == 201, await r.text()
    engine = (await r.json())["id"]
    body = target_payload(env, env.ssh_target, docker=True)
    r = await client.post("/api/ssh/targets", json=body, headers=headers)
    assert r.status == 201, await r.text()
    target = (await r.json())["id"]
    report = make_report("st-agent", containers=2)
    r = await client.post(
        "/api/agents/docker/report",
        data=json.dumps(report),
        headers={"Authorization": f"Bearer {AGENT_TOKEN}", "Content-Type": "application/json"},
    )
    assert r.status == 204, await r.text()
    agent_ref = report["containers"][0]["Id"][:12]
    r = await client.post(
        "/api/alerts/channels",
        json={"name": "st-hook", "kind": "webhook", "url": "http://127.0.0.1:1/hook"},
        headers=headers,
    )
    assert r.status == 201, await r.text()
    channel = (await r.json())["id"]
    r = await client.post(
        "/api/alerts/rules",
        json={"name": "st-rule", "kind": "container_exited", "channels": [channel]},
        headers=headers,
    )
    assert r.status == 201, await r.text()
    rule = (await r.json())["id"]
    return {
        "/api/alerts/channels": {"id": channel},
        "/api/alerts/rules": {"id": rule},
        "/api/docker/hosts": {"id": engine, "ref": container},
        "/api/docker-ssh/hosts": {"id": target, "ref": container},
        "/api/ssh/targets": {"id": target},
        "/api/agents/docker/hosts": {"host": "st-agent", "ref": agent_ref},
        "/api/hosts": {"host_id": f"docker:{engine}", "ref": container},
        "/ui/hosts": {"host_id": f"ssh:{target}", "ref": container},
    }


def _fuzz(doc: dict[str, Any], base_url: str, admin: dict[str, str], real: dict[str, Any]) -> Run:
    schema = schemathesis.openapi.from_dict(doc)
    run = Run(base_url)
    ops = sorted(_operations(schema), key=lambda o: (_order(o.method.upper(), o.path), o.path))
    for op in ops:
        key = (op.method.upper(), op.path)
        if key in EXCLUDED or key in LAST:
            continue
        # The agent's own route authenticates with the agent token, not a user's.
        headers = admin
        if op.path == "/api/agents/docker/report":
            headers = {"Authorization": f"Bearer {AGENT_TOKEN}"}
        run.operation(op, headers)
        params = _real_params(op.path, real)
        if params:
            run.operation(op, headers, params)
        if _takes_input(doc, *key):
            # Off-schema bodies and parameters: refused with a documented 4xx, never a 500.
            run.operation(op, headers, params, GenerationMode.NEGATIVE)
    for op in ops:
        if (op.method.upper(), op.path) in LAST:
            run.operation(op, admin)
    return run


def _takes_input(doc: dict[str, Any], method: str, path: str) -> bool:
    op = doc["paths"][path][method.lower()]
    return "requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", []))


async def test_every_operation_answers_as_documented(
    archnest_client: Any, admin_headers: dict[str, str], testenv_docker: TestEnv
) -> None:
    started = time.monotonic()
    real = await _setup_objects(archnest_client, admin_headers, testenv_docker)
    r = await archnest_client.get("/api/openapi.json")
    doc = _narrow(await r.json(), testenv_docker)
    base_url = str(archnest_client.make_url("")).rstrip("/")
    run = await asyncio.to_thread(_fuzz, doc, base_url, admin_headers, real)
    assert not run.problems, "\n\n".join(run.problems)
    called = {label for (label, _), statuses in run.statuses.items() if statuses}
    documented = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    # Every operation but the excluded ones was really called.
    assert called == documented - {f"{m} {p}" for m, p in EXCLUDED}
    # With the real objects, every read succeeded at least once (or answered 501: agent
    # hosts have no logs): the success paths and their schemas were checked, not only
    # the 404s.
    unread = [
        label
        for (label, where), statuses in run.statuses.items()
        if where == "real objects" and label.startswith("GET ")
        if not any(200 <= s < 300 or s == 501 for s in statuses)
    ]
    assert not unread, {k: v for k, v in run.statuses.items() if k[0] in unread}
    assert time.monotonic() - started < 240
