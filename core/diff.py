"""The container diff: two containers on any hosts and sources, field by field.

``GET /api/diff?a={host_id}/{ref}&b={host_id}/{ref}`` reads both details at once
through the one resolver, each under the per-host timeout, and compares what people
compare between two deployments of "the same" service: image, command, user, restart
policy, health, ports, mounts, networks, and every env variable and label by name.

Secret-looking env values are masked in every detail, and stay masked here: a masked
value is compared through the keyed digest the normaliser keeps beside the detail
(:func:`archnest.normalise.secret_digests`), and only the verdict (``same``) is
answered, never the value or its digest. The agent masks on the host before sending,
so for an agent host there is nothing to compare: ``same`` is null ("cannot tell").
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from .containers import REF_PATTERN, ContainerDetail
from .errors import ApiError, BadRequest
from .normalise import secret_digests
from .openapi import Param, operation
from .resolve import resolve_host_id, with_timeout
from .secrets import MASK


class DiffField(BaseModel):
    """One compared field. ``same`` is null when it cannot be told: a masked env value
    from a source that masks before sending (the agent)."""

    field: str
    a: Any = None
    b: Any = None
    same: bool | None


class DiffSide(BaseModel):
    host_id: str
    ref: str
    id: str
    name: str


class ContainerDiff(BaseModel):
    a: DiffSide
    b: DiffSide
    fields: list[DiffField]


SIDE_HELP = "A container as `{host_id}/{ref}`, e.g. `docker:1/web` (any host and source)."


def parse_side(request: web.Request, name: str) -> tuple[str, str]:
    raw = request.query.get(name, "")
    host_id, _, ref = raw.rpartition("/")
    if not host_id or ":" not in host_id or not REF_PATTERN.fullmatch(ref):
        raise BadRequest(
            f"{name} must name a container as HOST_ID/REF, e.g. docker:1/web",
            code="invalid_query",
            field=name,
        )
    return host_id, ref


async def _detail(app: web.Application, host_id: str, ref: str) -> ContainerDetail:
    source, key = await resolve_host_id(app, host_id)
    return await with_timeout(app, source.get_container(key, ref), f"inspect {host_id}/{ref}")


def _side_error(side: str, where: str, exc: BaseException) -> BaseException:
    if isinstance(exc, ApiError):
        return ApiError(
            f"{side} ({where}): {exc.message}", code=exc.code, status=exc.status, field=side
        )
    return exc  # not an API error: a bug, raised as it is (a logged 500)


def _ports(d: ContainerDetail) -> list[str]:
    return [
        f"{p.ip + ':' if p.ip else ''}{p.public if p.public is not None else '-'}"
        f"->{p.private}/{p.type}"
        for p in d.ports
    ]


def _mounts(d: ContainerDetail) -> list[str]:
    return sorted(
        f"{m.source or '-'}:{m.destination}:{'rw' if m.rw else 'ro'}"
        + (f" ({m.type})" if m.type else "")
        for m in d.mounts
    )


# (field, how to read it): the one-value fields, in the order they are shown.
_SCALARS: tuple[tuple[str, Any], ...] = (
    ("image", lambda d: d.image),
    ("image_id", lambda d: d.extra.get("image_id")),
    ("command", lambda d: d.command),
    ("user", lambda d: d.extra.get("user")),
    ("restart_policy", lambda d: d.extra.get("restart_policy")),
    ("state", lambda d: d.state),
    ("health", lambda d: d.health),
    ("ports", _ports),
    ("mounts", _mounts),
    ("networks", lambda d: sorted(n.name for n in d.networks)),
)


def _env_fields(a: ContainerDetail, b: ContainerDetail) -> list[DiffField]:
    env_a = {e.name: e for e in a.env}
    env_b = {e.name: e for e in b.env}
    digests_a, digests_b = secret_digests(a), secret_digests(b)
    out = []
    for name in sorted(env_a.keys() | env_b.keys()):
        ea, eb = env_a.get(name), env_b.get(name)
        same: bool | None
        if ea is None or eb is None:
            same = False
        elif not ea.masked and not eb.masked:
            same = ea.value == eb.value
        elif ea.masked != eb.masked:
            same = False  # one value carries credentials, the other does not
        elif (
            digests_a is not None
            and digests_b is not None
            and name in digests_a.keys() & digests_b.keys()
        ):
            same = digests_a[name] == digests_b[name]
        else:
            same = None  # masked before it reached this server: cannot tell
        out.append(
            DiffField(
                field=f"env.{name}",
                a=None if ea is None else (MASK if ea.masked else ea.value),
                b=None if eb is None else (MASK if eb.masked else eb.value),
                same=same,
            )
        )
    return out


def compare(a: ContainerDetail, b: ContainerDetail) -> list[DiffField]:
    """Every compared field of two details, in display order."""
    fields = []
    for name, read in _SCALARS:
        va, vb = read(a), read(b)
        fields.append(DiffField(field=name, a=va, b=vb, same=va == vb))
    fields += _env_fields(a, b)
    for key in sorted(a.labels.keys() | b.labels.keys()):
        va, vb = a.labels.get(key), b.labels.get(key)
        fields.append(DiffField(field=f"labels.{key}", a=va, b=vb, same=va == vb))
    return fields


@operation(
    "Two containers compared field by field (any hosts and sources)",
    description=(
        "Image, command, user, restart policy, state, health, ports, mounts, networks, "
        "then each env variable (`env.NAME`) and label (`labels.KEY`). Env values that "
        "look secret stay masked (`****`): their `same` compares them without revealing "
        "them, and is null when the host masked them before sending (agent hosts)."
    ),
    query=(Param("a", SIDE_HELP, required=True), Param("b", SIDE_HELP, required=True)),
    responses={200: ContainerDiff},
    errors=(400, 404, 502, 504),
)
async def container_diff(request: web.Request) -> web.Response:
    (host_a, ref_a), (host_b, ref_b) = parse_side(request, "a"), parse_side(request, "b")
    got = await asyncio.gather(
        _detail(request.app, host_a, ref_a),
        _detail(request.app, host_b, ref_b),
        return_exceptions=True,
    )
    failed = [
        _side_error(side, f"{host}/{ref}", exc)
        for side, host, ref, exc in (("a", host_a, ref_a, got[0]), ("b", host_b, ref_b, got[1]))
        if isinstance(exc, BaseException)
    ]
    if failed:
        first = failed[0]
        if isinstance(first, ApiError) and len(failed) == 2 and isinstance(failed[1], ApiError):
            first.message += f"; {failed[1].message}"  # both sides failed: say both
        raise first
    a, b = got
    assert isinstance(a, ContainerDetail) and isinstance(b, ContainerDetail)
    body = ContainerDiff(
        a=DiffSide(host_id=host_a, ref=ref_a, id=a.id, name=a.name),
        b=DiffSide(host_id=host_b, ref=ref_b, id=b.id, name=b.name),
        fields=compare(a, b),
    )
    return web.json_response(body.model_dump(mode="json"))


def setup_diff_routes(app: web.Application) -> None:
    app.router.add_get("/api/diff", container_diff)
