"""Walk every route of the real app as an admin with odd path params and bodies.

Nothing may answer 500, and every 4xx under /api/ must have api.md's error shape.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from archnest.auth import is_websocket
from yarl import URL

ODD_VALUES = [
    "x1",
    "0",
    "-1",
    "1",
    "99999999999999999999999",
    "999999999999",
    "2147483648",
    "\u00b2",  # str.isdigit() is True, int() refuses it
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() accepts it
    "1.5",
    "..",
    "a b",
    "{{json .}}",
    "--format=x",
    "$(id)",
    "'; id #",
    "\u202e",
    "docker:1",
    "docker:\u00b2",
    "docker:99999999999999999999",
    "docker:2147483648",
    "ssh:\u00b2",
    "ssh:99999999999",
    "agent:nope",
    "agent:../x",
    "nope:1",
    ":1",
    "docker:",
    "x" * 400,
]

BODIES: list[tuple[bytes | None, dict[str, str]]] = [
    (None, {}),
    (b"", {"Content-Type": "application/json"}),
    (b"{", {"Content-Type": "application/json"}),
    (b"[]", {"Content-Type": "application/json"}),
    (b"null", {"Content-Type": "application/json"}),
    (b'{"name": 1, "url": [], "tls": "x", "jump": [99999999999999999999]}', {}),
    (b'{"name": "n", "url": "tcp://127.0.0.1:1", "tls": {"verify": "yes"}}', {}),
    (b"\xff\xfe\x00", {"Content-Type": "application/json"}),
]

_PLACEHOLDER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def _paths(resource) -> list[str]:
    info = resource.get_info()
    if "path" in info:
        return [info["path"]]
    if "prefix" in info:  # static
        return [info["prefix"] + "/../../etc/passwd", info["prefix"] + "/nope.js"]
    template = info.get("formatter", "")
    names = _PLACEHOLDER.findall(template)
    out = []
    for name in names:
        for value in ODD_VALUES:
            path = template
            for other in names:
                fill = quote(value, safe="") if other == name else "x1"
                path = path.replace("{" + other + "}", fill)
            out.append(path)
    return out or [template]


def _check(problems: list[str], what: str, path: str, status: int, body: bytes, ctype: str):
    if status >= 500 and status not in (501, 502, 503, 504):
        problems.append(f"{what}: {status} {body[:200]!r}")
        return
    if path.startswith("/api/") and 400 <= status < 600 and status != 101:
        import json

        try:
            data = json.loads(body)
            err = data["error"]
            assert isinstance(err["code"], str) and isinstance(err["message"], str)
        except Exception:
            problems.append(f"{what}: {status} without the error shape: {body[:200]!r}")


def _is_ssh(path: str, query: str) -> bool:
    """Routes of core/ssh and docker_ssh, fuzzed in a test of their own."""
    return path.startswith(("/api/ssh/", "/api/docker-ssh/")) or "ssh%3A" in path + query


async def _fuzz(client, admin_headers, want_ssh: bool) -> list[str]:
    origin = {"Origin": str(client.make_url("")).rstrip("/")}
    problems: list[str] = []
    count = 0
    for route in client.app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        method = route.method.upper()
        if method == "HEAD":
            continue
        if method == "*":
            method = "POST"
        ws = is_websocket(route.handler)
        for path in _paths(resource):
            queries = [""]
            if ws:
                queries = [
                    "?host=" + quote(v, safe="") + "&container=c1&cmd=sh" for v in ODD_VALUES[:12]
                ] + ["?host=docker:1&container=c1&cmd=" + quote(v) for v in ("zsh", "sh -c id")]
            elif method == "GET":
                queries = ["", "?tail=abc&since=-5", "?tail=" + "9" * 5000, "?since=1e9&all=%C2%B2"]
            bodies = BODIES if method in ("POST", "PUT", "PATCH", "DELETE") else [(None, {})]
            for query in queries:
                if _is_ssh(path, query) != want_ssh:
                    continue
                for body, headers in bodies:
                    url = URL(path + query, encoded=True)
                    hdrs = {**admin_headers, **origin, **headers}
                    resp = await client.request(method, url, data=body, headers=hdrs)
                    raw = await resp.read()
                    count += 1
                    what = f"{method} {path[:80]}{query[:40]} body={body!r:.40}"
                    _check(problems, what, path, resp.status, raw, resp.content_type)
    assert count > 20
    return problems


async def test_no_route_answers_500_to_odd_input(archnest_client, admin_headers):
    problems = await _fuzz(archnest_client, admin_headers, want_ssh=False)
    assert problems == [], "\n".join(problems[:40])


async def test_ssh_routes_answer_no_500_to_odd_input(archnest_client, admin_headers):
    problems = await _fuzz(archnest_client, admin_headers, want_ssh=True)
    assert problems == [], "\n".join(problems[:40])


async def test_oversized_json_body_is_413_everywhere(archnest_client, admin_headers):
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    problems = []
    for route in archnest_client.app.router.routes():
        if route.resource is None or route.method not in ("POST", "PATCH", "PUT"):
            continue
        info = route.resource.get_info()
        path = info.get("path") or _PLACEHOLDER.sub("1", info.get("formatter", ""))
        if "/report" in path or "/login" in path or "logout" in path:
            continue
        resp = await archnest_client.request(
            route.method,
            path,
            data=big,
            headers={**admin_headers, "Content-Type": "application/json"},
        )
        if route.method in ("PATCH", "PUT") or path.endswith("/hosts") or path.endswith("/targets"):
            if resp.status != 413:
                problems.append(f"{route.method} {path}: {resp.status}")
        elif resp.status >= 500 and resp.status not in (502, 503, 504):
            problems.append(f"{route.method} {path}: {resp.status}")
    assert problems == []
