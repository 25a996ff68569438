"""A small Docker Engine API emulator: many engines in one process, for scale benches.

This is a simulation for scale only. It answers just enough of the Engine API for the
app's ``docker`` source to list, inspect and follow events of many engines at once;
the real dockerd of tests/testenv is what covers correctness (its rows, its errors,
its event order). Row and inspect shapes are copied from a real dockerd 20.10 (API
1.41) and varied: ids, names, images, states, health, ports, labels, and compose
project/service labels on about half of the containers.

One process serves ``--engines`` engines on as many loopback TCP ports (one aiohttp
application, one listening socket per engine; the engine is chosen by the local port
a request arrived on), each with ``--containers`` containers. Paths are accepted with
and without the ``/v1.xx`` prefix (aiodocker asks ``/version`` unversioned first):

- ``GET|HEAD /_ping`` (``Api-Version`` header), ``GET /version``, ``GET /info``;
- ``GET /containers/json`` (``all``; ``filters`` with ``id``, ``name``, ``status``,
  ``label``); ``GET /containers/{id or name}/json`` (inspect);
- ``GET /events``: newline-delimited JSON, streamed until the client goes (``filters``
  ``type`` honoured: only container events exist here).

A control server on its own port changes a container's state and emits its event:

- ``POST /change`` ``{"engine": i, "container": j|"id"|"name", "action": a}`` and
  ``POST /random`` ``{"action": a}`` (optional; else the natural next step: running ->
  pause, paused -> unpause, exited/created -> start) answer
  ``{"engine","port","id","name","action","state","time_nano"}``;
- ``GET /stats``: subscribers per engine, requests served.

On start it prints one JSON line to stdout: ``{"control_port": P, "ports": [...]}``.

    python bench/engine_emulator.py --engines 200 --containers 50
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_VERSION = "1.41"
ENGINE_VERSION = "20.10.24+emulated"
IMAGES = [
    ("nginx:1.25-alpine", ["/docker-entrypoint.sh", "nginx -g 'daemon off;'"], [80]),
    ("postgres:16", ["docker-entrypoint.sh", "postgres"], [5432]),
    ("redis:7-alpine", ["docker-entrypoint.sh", "redis-server"], [6379]),
    ("grafana/grafana:10.4.2", ["/run.sh"], [3000]),
    ("prom/prometheus:v2.51.0", ["/bin/prometheus", "--config.file=/etc/prom.yml"], [9090]),
    ("traefik:v3.0", ["/entrypoint.sh", "traefik"], [80, 443]),
    ("ghcr.io/home-assistant/home-assistant:stable", ["/init"], [8123]),
    ("jellyfin/jellyfin:10.8.13", ["/jellyfin/jellyfin"], [8096]),
    ("vaultwarden/server:1.30.5", ["/start.sh"], [80]),
    ("busybox:1.36", ["sleep", "infinity"], []),
    ("node:20-alpine", ["docker-entrypoint.sh", "node", "server.js"], [3000]),
    ("lscr.io/linuxserver/sonarr:4", ["/init"], [8989]),
    ("lscr.io/linuxserver/radarr:5", ["/init"], [7878]),
    ("prom/alertmanager:v0.27.0", ["/bin/alertmanager"], [9093]),
]
# Compose projects: service -> the image it runs (an index into IMAGES).
PROJECTS = {
    "shop": {"web": 0, "api": 10, "db": 1, "cache": 2},
    "monitoring": {"prometheus": 4, "grafana": 3, "alertmanager": 13},
    "media": {"jellyfin": 7, "sonarr": 11, "radarr": 12},
    "auth": {"vault": 8, "proxy": 5},
}
NEXT_ACTION = {"running": "pause", "paused": "unpause", "exited": "start", "created": "start"}
STATE_AFTER = {
    "pause": "paused",
    "unpause": "running",
    "start": "running",
    "restart": "running",
    "stop": "exited",
    "die": "exited",
    "kill": "exited",
}


@dataclass
class Container:
    id: str
    name: str
    image: str
    image_id: str
    cmd: list[str]
    ports: list[int]
    labels: dict[str, str]
    state: str
    created: int
    started: int
    health: str | None = None
    exit_code: int = 0

    def status(self, now: float) -> str:
        if self.state in ("running", "paused"):
            up = f"Up {_ago(now - self.started)}"
            if self.health:
                up += f" ({self.health})"
            return up + (" (Paused)" if self.state == "paused" else "")
        if self.state == "exited":
            return f"Exited ({self.exit_code}) {_ago(now - self.started)} ago"
        return "Created"

    def row(self, now: float, ip: str) -> dict[str, Any]:
        """One row of ``GET /containers/json``, shaped as dockerd 20.10 writes it."""
        up = self.state in ("running", "paused")
        return {
            "Id": self.id,
            "Names": ["/" + self.name],
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": " ".join(self.cmd),
            "Created": self.created,
            "Ports": [
                {"IP": "0.0.0.0", "PrivatePort": p, "PublicPort": 20000 + p, "Type": "tcp"}
                for p in self.ports
                if up
            ],
            "Labels": self.labels,
            "State": self.state,
            "Status": self.status(now),
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {"Networks": {"bridge": _network(self.id, ip if up else "")}},
            "Mounts": [],
        }

    def inspect(self, now: float, ip: str) -> dict[str, Any]:
        """``GET /containers/{id}/json``, the fields a real dockerd 20.10 gives."""
        up = self.state in ("running", "paused")
        state = {
            "Status": self.state,
            "Running": up,
            "Paused": self.state == "paused",
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": 1000 + int(self.id[:4], 16) if up else 0,
            "ExitCode": 0 if up else self.exit_code,
            "Error": "",
            "StartedAt": _iso(self.started),
            "FinishedAt": "0001-01-01T00:00:00Z" if up else _iso(self.started + 60),
        }
        if self.health:
            state["Health"] = {"Status": self.health, "FailingStreak": 0, "Log": []}
        bindings = {f"{p}/tcp": [{"HostIp": "", "HostPort": str(20000 + p)}] for p in self.ports}
        return {
            "Id": self.id,
            "Created": _iso(self.created),
            "Path": self.cmd[0],
            "Args": self.cmd[1:],
            "State": state,
            "Image": self.image_id,
            "Name": "/" + self.name,
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": {
                "Binds": None,
                "LogConfig": {"Type": "json-file", "Config": {}},
                "NetworkMode": "bridge",
                "PortBindings": bindings,
                "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                "AutoRemove": False,
                "Privileged": False,
                "ReadonlyRootfs": False,
                "ShmSize": 67108864,
                "Runtime": "runc",
                "Memory": 0,
                "NanoCpus": 0,
            },
            "Mounts": [],
            "Config": {
                "Hostname": self.id[:12],
                "Domainname": "",
                "User": "",
                "AttachStdin": False,
                "AttachStdout": False,
                "AttachStderr": False,
                "ExposedPorts": {f"{p}/tcp": {} for p in self.ports},
                "Tty": False,
                "OpenStdin": False,
                "StdinOnce": False,
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": self.cmd,
                "Image": self.image,
                "Volumes": None,
                "WorkingDir": "",
                "Entrypoint": None,
                "OnBuild": None,
                "Labels": self.labels,
            },
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": self.id[::-1] if up else "",
                "HairpinMode": False,
                "Ports": {
                    k: [{"HostIp": "0.0.0.0", "HostPort": v[0]["HostPort"]}] if up else None
                    for k, v in bindings.items()
                },
                "IPAddress": ip if up else "",
                "IPPrefixLen": 16 if up else 0,
                "Gateway": "172.17.0.1" if up else "",
                "MacAddress": "",
                "Networks": {"bridge": _network(self.id, ip if up else "")},
            },
        }


def _network(cid: str, ip: str) -> dict[str, Any]:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "NetworkID": hashlib.sha256(b"bridge").hexdigest() if ip else "",
        "EndpointID": cid[::-1] if ip else "",
        "Gateway": "172.17.0.1" if ip else "",
        "IPAddress": ip,
        "IPPrefixLen": 16 if ip else 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": f"02:42:ac:11:{cid[:2]}:{cid[2:4]}" if ip else "",
        "DriverOpts": None,
    }


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds" if seconds > 1 else "Less than a second"


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime(epoch))


@dataclass
class Engine:
    index: int
    containers: list[Container]
    subscribers: list[asyncio.Queue] = field(default_factory=list)
    _cache: dict[bool, bytes] = field(default_factory=dict)

    def find(self, ref: str) -> Container | None:
        ref = ref.lstrip("/")
        for c in self.containers:
            if c.id == ref or c.name == ref:
                return c
        matches = [c for c in self.containers if len(ref) >= 3 and c.id.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def ip(self, c: Container) -> str:
        n = int(c.id[:4], 16)  # stable per container, like an address the engine kept
        return f"172.17.{n // 250 % 250}.{n % 250 + 2}"

    def listing(self, all_: bool, filters: dict[str, list[str]]) -> bytes:
        if not filters and all_ in self._cache:
            return self._cache[all_]  # the common ask, unchanged since the last change
        now = time.time()
        rows = [
            c.row(now, self.ip(c))
            for c in self.containers
            if (all_ or c.state in ("running", "paused")) and _matches(c, filters)
        ]
        body = json.dumps(rows).encode()
        if not filters:
            self._cache[all_] = body
        return body

    def change(self, c: Container, action: str) -> dict[str, Any]:
        """Apply ``action`` to ``c`` and send its event to every subscriber."""
        c.state = STATE_AFTER.get(action, c.state)
        if action in ("start", "restart"):
            c.started = int(time.time())
        if action in ("die", "kill", "stop"):
            c.exit_code = 137 if action == "kill" else 0
        self._cache.clear()
        now_ns = time.time_ns()
        attrs = {**c.labels, "image": c.image, "name": c.name}
        if action == "die":
            attrs["exitCode"] = str(c.exit_code)
        event = {
            "status": action,
            "id": c.id,
            "from": c.image,
            "Type": "container",
            "Action": action,
            "Actor": {"ID": c.id, "Attributes": attrs},
            "scope": "local",
            "time": now_ns // 1_000_000_000,
            "timeNano": now_ns,
        }
        line = json.dumps(event).encode() + b"\n"
        for queue in self.subscribers:
            queue.put_nowait(line)
        return {"engine": self.index, "id": c.id, "name": c.name, "action": action}


def _matches(c: Container, filters: dict[str, list[str]]) -> bool:
    if "id" in filters and not any(c.id.startswith(v) for v in filters["id"]):
        return False
    if "name" in filters and not any(v.lstrip("/") in c.name for v in filters["name"]):
        return False
    if "status" in filters and c.state not in filters["status"]:
        return False
    for want in filters.get("label", []):
        key, eq, value = want.partition("=")
        if key not in c.labels or (eq and c.labels[key] != value):
            return False
    return True


def _filters(request: web.Request) -> dict[str, list[str]]:
    """The Engine API's ``filters``: JSON of name -> [values] or name -> {value: true}."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise web.HTTPBadRequest(text='{"message":"invalid filter"}') from None
    return {k: list(v) for k, v in parsed.items()}


def make_engines(count: int, per_engine: int, seed: int) -> list[Engine]:
    rnd = random.Random(seed)
    now = int(time.time())
    engines = []
    for e in range(count):
        containers: list[Container] = []
        used: set[str] = set()
        for i in range(per_engine):
            cid = hashlib.sha256(f"{seed}/{e}/{i}".encode()).hexdigest()
            labels: dict[str, str] = {"maintainer": "ops@example.org"}
            if rnd.random() < 0.5:
                project = rnd.choice(sorted(PROJECTS))
                service = rnd.choice(sorted(PROJECTS[project]))
                n = 1
                while f"{project}-{service}-{n}" in used:
                    n += 1
                name = f"{project}-{service}-{n}"
                labels |= {
                    "com.docker.compose.project": project,
                    "com.docker.compose.service": service,
                    "com.docker.compose.container-number": str(n),
                    "com.docker.compose.oneoff": "False",
                    "com.docker.compose.project.working_dir": f"/srv/{project}",
                    "com.docker.compose.project.config_files": f"/srv/{project}/compose.yaml",
                    "com.docker.compose.version": "2.24.6",
                }
                image, cmd, ports = IMAGES[PROJECTS[project][service]]
            else:
                image, cmd, ports = IMAGES[rnd.randrange(len(IMAGES))]
                base = image.rsplit("/", 1)[-1].split(":")[0]
                name = f"{base}-{i}"
            used.add(name)
            state = rnd.choices(["running", "exited", "paused", "created"], [80, 14, 3, 3])[0]
            created = now - rnd.randrange(3600, 90 * 86400)
            containers.append(
                Container(
                    id=cid,
                    name=name,
                    image=image,
                    image_id="sha256:" + hashlib.sha256(image.encode()).hexdigest(),
                    cmd=list(cmd),
                    ports=list(ports),
                    labels=labels,
                    state=state,
                    created=created,
                    started=created + rnd.randrange(0, 3600),
                    health=rnd.choice([None, None, "healthy"]) if state == "running" else None,
                    exit_code=rnd.choice([0, 0, 1, 137]),
                )
            )
        engines.append(Engine(e, containers))
    return engines


# --- the Engine API ------------------------------------------------------------------

ENGINES: web.AppKey[dict[int, Engine]] = web.AppKey("engines", dict)
SERVED: web.AppKey[dict[str, int]] = web.AppKey("served", dict)


def _engine(request: web.Request) -> Engine:
    port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
    request.app[SERVED]["requests"] += 1
    return request.app[ENGINES][port]


def _json(body: Any, status: int = 200) -> web.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return web.Response(body=raw, status=status, content_type="application/json", headers=_HEADERS)


_HEADERS = {"Api-Version": API_VERSION, "Server": f"Docker/{ENGINE_VERSION} (linux)"}


async def ping(request: web.Request) -> web.Response:
    _engine(request)
    return web.Response(text="OK", headers={**_HEADERS, "Docker-Experimental": "false"})


async def version(request: web.Request) -> web.Response:
    _engine(request)
    return _json(
        {
            "Platform": {"Name": "Docker Engine - Emulated"},
            "Version": ENGINE_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": "1.12",
            "GitCommit": "emulated",
            "GoVersion": "go1.19.8",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "6.1.0-emulated",
        }
    )


async def info(request: web.Request) -> web.Response:
    engine = _engine(request)
    states = [c.state for c in engine.containers]
    return _json(
        {
            "ID": f"EMUL:{engine.index:04d}",
            "Name": f"emulated-{engine.index:03d}",
            "Containers": len(states),
            "ContainersRunning": states.count("running"),
            "ContainersPaused": states.count("paused"),
            "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
            "Images": len(IMAGES),
            "NCPU": 4,
            "MemTotal": 8 * 1024**3,
            "ServerVersion": ENGINE_VERSION,
            "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
            "OSType": "linux",
            "Architecture": "x86_64",
        }
    )


async def containers_list(request: web.Request) -> web.Response:
    engine = _engine(request)
    all_ = request.query.get("all", "") in ("1", "true", "True")
    return _json(engine.listing(all_, _filters(request)))


async def container_inspect(request: web.Request) -> web.Response:
    engine = _engine(request)
    ref = request.match_info["ref"]
    c = engine.find(ref)
    if c is None:
        return _json({"message": f"No such container: {ref}"}, status=404)
    return _json(c.inspect(time.time(), engine.ip(c)))


async def events(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    types = _filters(request).get("type")
    resp = web.StreamResponse(headers={**_HEADERS, "Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    engine.subscribers.append(queue)
    try:
        while True:
            line = await queue.get()
            if types is None or "container" in types:
                await resp.write(line)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the subscriber went: the engine forgets it, as dockerd does
    finally:
        engine.subscribers.remove(queue)
    return resp


def engine_app(engines: dict[int, Engine]) -> web.Application:
    app = web.Application()
    app[ENGINES] = engines
    app[SERVED] = {"requests": 0}
    for prefix in ("", "/{version:v[0-9.]+}"):
        app.router.add_route("*", prefix + "/_ping", ping)
        app.router.add_get(prefix + "/version", version)
        app.router.add_get(prefix + "/info", info)
        app.router.add_get(prefix + "/containers/json", containers_list)
        app.router.add_get(prefix + "/containers/{ref}/json", container_inspect)
        app.router.add_get(prefix + "/events", events)
    return app


# --- control ---------------------------------------------------------------------------


def control_app(engines: dict[int, Engine], by_index: list[tuple[int, Engine]], seed: int):  # type: ignore[no-untyped-def]
    rnd = random.Random(seed + 1)
    app = web.Application()

    def apply(port: int, engine: Engine, c: Container, action: str | None) -> web.Response:
        action = action or NEXT_ACTION.get(c.state, "start")
        out = engine.change(c, action)
        return web.json_response(
            {**out, "port": port, "state": c.state, "time_nano": time.time_ns()}
        )

    async def change(request: web.Request) -> web.Response:
        body = await request.json()
        port, engine = by_index[int(body["engine"])]
        ref = body["container"]
        c = engine.containers[ref] if isinstance(ref, int) else engine.find(str(ref))
        if c is None:
            raise web.HTTPNotFound(text=f"no container {ref!r}")
        return apply(port, engine, c, body.get("action"))

    async def pick(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        port, engine = by_index[rnd.randrange(len(by_index))]
        return apply(port, engine, rnd.choice(engine.containers), body.get("action"))

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "subscribers": [len(e.subscribers) for _, e in by_index],
                "requests": request.app["engine_app"][SERVED]["requests"],
            }
        )

    app.router.add_post("/change", change)
    app.router.add_post("/random", pick)
    app.router.add_get("/stats", stats)
    return app


async def serve(args: argparse.Namespace) -> None:
    engines = make_engines(args.engines, args.containers, args.seed)
    by_port: dict[int, Engine] = {}
    api = engine_app(by_port)
    # handler_cancellation: an event stream whose client left ends at once (its
    # subscriber count is what the bench reads), not at the next event written.
    runner = web.AppRunner(api, access_log=None, shutdown_timeout=1, handler_cancellation=True)
    await runner.setup()
    by_index: list[tuple[int, Engine]] = []
    for engine in engines:
        site = web.TCPSite(runner, args.host, 0, backlog=512)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        by_port[port] = engine
        by_index.append((port, engine))
    control = control_app(by_port, by_index, args.seed)
    control["engine_app"] = api
    control_runner = web.AppRunner(control, access_log=None)
    await control_runner.setup()
    control_site = web.TCPSite(control_runner, args.host, args.control_port)
    await control_site.start()
    control_port = control_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"control_port": control_port, "ports": [p for p, _ in by_index]}))
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await control_runner.cleanup()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", type=int, default=200)
    p.add_argument("--containers", type=int, default=50, help="containers per engine")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--seed", type=int, default=14)
    asyncio.run(serve(p.parse_args(argv)))


if __name__ == "__main__":
    main()
