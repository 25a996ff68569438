"""The agent's report, schema 1: validation model, and the ingest's split of a body.

The agent sends trimmed ``docker inspect`` documents plus a ``docker stats`` sample
(see docs/docker-agent-monitoring.md). The schema is the pydantic model
:class:`AgentReport` (also what the API reference documents); unknown fields are
dropped. :mod:`.normalise` then reshapes what passed.

The ingest does not validate a body in one piece: :func:`split_report` scans it once
(msgspec, JSON syntax checked everywhere) into the small top-level fields, which
:class:`AgentReport` validates, and the *raw bytes* of each container, which
:func:`validate_container` validates with the same schema (:class:`AgentContainer`)
only when those bytes were not seen in the host's previous report: a container that
did not change between two reports is byte-for-byte the same document, so its
validated and normalised form can be reused (:class:`.normalise.ContainerCache`).
Given those bytes, the scan itself skips them too: the containers array is matched
against the host's previous containers and only what differs is read
(:func:`_split_like_previous`), with the same result as reading the whole body.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Required

import msgspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

SCHEMA_VERSION = 1
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$"
HOST_RE = re.compile(HOST_PATTERN)

Str = Annotated[str, StringConstraints(max_length=4096)]
ShortStr = Annotated[str, StringConstraints(max_length=512)]


class _Doc(TypedDict, total=False):
    """Base of the inspect sub-documents.

    TypedDicts (validated by pydantic into plain dicts) rather than models: a report
    holds thousands of these and model instances cost several times more to build.
    Keys not declared here are dropped, so nothing unknown is ever stored.
    """


class HealthDoc(_Doc, total=False):
    Status: ShortStr | None
    FailingStreak: int | None


class StateDoc(_Doc, total=False):
    Status: ShortStr
    Running: bool
    Paused: bool
    Restarting: bool
    OOMKilled: bool
    Dead: bool
    Pid: int | None
    ExitCode: int | None
    Error: Str | None
    StartedAt: ShortStr | None
    FinishedAt: ShortStr | None
    Health: HealthDoc | None


class ConfigDoc(_Doc, total=False):
    Image: Str | None
    Cmd: list[Str] | Str | None
    Entrypoint: list[Str] | Str | None
    Labels: dict[Str, Str] | None
    User: ShortStr | None
    Env: list[Annotated[str, StringConstraints(max_length=65536)]] | None


class RestartPolicyDoc(_Doc, total=False):
    Name: ShortStr | None
    MaximumRetryCount: int | None


class HostConfigDoc(_Doc, total=False):
    RestartPolicy: RestartPolicyDoc | None
    NetworkMode: ShortStr | None


class PortBindingDoc(_Doc, total=False):
    HostIp: ShortStr | None
    HostPort: ShortStr | None


class NetworkDoc(_Doc, total=False):
    IPAddress: ShortStr | None
    MacAddress: ShortStr | None
    Gateway: ShortStr | None


class NetworkSettingsDoc(_Doc, total=False):
    Ports: dict[ShortStr, list[PortBindingDoc] | None] | None
    Networks: dict[ShortStr, NetworkDoc | None] | None


class MountDoc(_Doc, total=False):
    Type: ShortStr | None
    Name: Str | None
    Source: Str | None
    Destination: Str
    Mode: ShortStr | None
    RW: bool


class AgentContainer(_Doc, total=False):
    """A trimmed ``docker inspect`` document (Docker's own key names)."""

    Id: Required[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12,64}$")]]
    Name: Annotated[str, StringConstraints(max_length=256)]
    Created: ShortStr | None
    Image: ShortStr | None
    RestartCount: int | None
    Config: ConfigDoc
    State: StateDoc
    HostConfig: HostConfigDoc | None
    NetworkSettings: NetworkSettingsDoc | None
    Mounts: list[MountDoc] | None


NonNegative = Annotated[int, Field(ge=0)]
MAX_CONTAINERS = 10000


class AgentStats(_Doc, total=False):
    cpu_percent: float | None
    mem_usage_bytes: NonNegative | None
    mem_limit_bytes: NonNegative | None
    net_rx_bytes: NonNegative | None
    net_tx_bytes: NonNegative | None
    block_read_bytes: NonNegative | None
    block_write_bytes: NonNegative | None
    pids: NonNegative | None


STATS_FIELDS = tuple(AgentStats.__annotations__)


class AgentReport(BaseModel):
    """One snapshot as POSTed by ``archnest-docker-agent.sh`` (``files/``)."""

    model_config = ConfigDict(extra="ignore")

    schema_: Literal[1] = Field(alias="schema")
    agent_version: Annotated[str, StringConstraints(max_length=64)]
    host: Annotated[str, StringConstraints(pattern=HOST_PATTERN)]
    reported_at: datetime
    engine: dict[ShortStr, ShortStr | int | float | bool | None] = Field(default_factory=dict)
    host_facts: dict[ShortStr, ShortStr | int | float | bool | None] = Field(default_factory=dict)
    containers: list[AgentContainer] = Field(max_length=MAX_CONTAINERS)
    stats: dict[ShortStr, AgentStats] = Field(default_factory=dict)


class ReportInvalid(ValueError):
    """The body is not JSON or not schema 1; ``str()`` is a message safe to return."""


def parse_report(body: bytes) -> AgentReport:
    """Validate raw request bytes as a schema-1 report, or raise :class:`ReportInvalid`."""
    try:
        return AgentReport.model_validate_json(body)
    except ValidationError as exc:
        raise ReportInvalid(_explain(exc)) from None


def _explain(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> str:
    # Only locations and pydantic's messages: the offending values are never echoed
    # back (they could be secrets from a broken agent).
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('msg', '')}"
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in (*prefix, *err.get("loc", ()))) or "(body)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "report does not match schema 1: " + "; ".join(parts) + more


# --- the ingest's split --------------------------------------------------------------


class _Parts(msgspec.Struct):
    """The top level of a body: each known field's raw JSON (empty when absent), the
    containers as one raw document each. Anything else is skipped (but still checked
    to be JSON)."""

    schema: msgspec.Raw = msgspec.Raw()
    agent_version: msgspec.Raw = msgspec.Raw()
    host: msgspec.Raw = msgspec.Raw()
    reported_at: msgspec.Raw = msgspec.Raw()
    engine: msgspec.Raw = msgspec.Raw()
    host_facts: msgspec.Raw = msgspec.Raw()
    stats: msgspec.Raw = msgspec.Raw()
    containers: list[msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET


_PARTS = msgspec.json.Decoder(_Parts)
# (attribute, its JSON key as bytes) of the top-level fields but the containers.
_HEADER_FIELDS = tuple(
    (f, b'"%s":' % f.encode()) for f in _Parts.__struct_fields__ if f != "containers"
)
_CONTAINER = TypeAdapter(AgentContainer)


class _FastStats(TypedDict, total=False):
    """:class:`AgentStats` for msgspec, with the same or stricter rules (no strings or
    ``5.0`` for integers, no strings for floats). Only a fast path: what it refuses
    goes through the model, whose verdict and messages are the schema's."""

    cpu_percent: float | None
    mem_usage_bytes: Annotated[int, msgspec.Meta(ge=0)] | None
    mem_limit_bytes: Annotated[int, msgspec.Meta(ge=0)] | None
    net_rx_bytes: Annotated[int, msgspec.Meta(ge=0)] | None
    net_tx_bytes: Annotated[int, msgspec.Meta(ge=0)] | None
    block_read_bytes: Annotated[int, msgspec.Meta(ge=0)] | None
    block_write_bytes: Annotated[int, msgspec.Meta(ge=0)] | None
    pids: Annotated[int, msgspec.Meta(ge=0)] | None


# The samples of a report: tens of them in every report, where the model took most of
# the header's validation time. Unknown keys are dropped, as the model drops them.
_STATS = msgspec.json.Decoder(dict[Annotated[str, msgspec.Meta(max_length=512)], _FastStats])


@dataclass(slots=True)
class SplitReport:
    """A body whose top level passed :class:`AgentReport`; containers not yet checked."""

    header: AgentReport  # every field validated; ``containers`` is empty here
    containers: list[bytes]  # each container's JSON exactly as sent


# --- reading a body against the host's previous containers ------------------------

_CONTAINERS_KEY = b'"containers":['
_HOST_KEY = b'"host":"'
# Stands in for the containers array while the rest of a body is read: a per-process
# random string, so no body can hold it where the containers array was not.
_NONCE = secrets.token_hex(16).encode()
_NONCE_ARRAY = b'"containers":["' + _NONCE + b'"]'
_NONCE_RAW = b'"' + _NONCE + b'"'
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
# How far ahead of a container that changed the next unchanged one is looked for.
_ANCHOR_LOOKAHEAD = 4
_ANCHOR_PREFIX = 96


def host_hint(body: bytes) -> str | None:
    """The value of the first ``"host":"..."`` in a body, unvalidated: only a hint of
    whose previous containers to compare the body with (see :func:`split_report`)."""
    at = body.find(_HOST_KEY)
    if at < 0:
        return None
    start = at + len(_HOST_KEY)
    end = body.find(b'"', start, start + 254)
    return body[start:end].decode("ascii", "replace") if end > 0 else None


def _containers_like(
    body: bytes, start: int, previous: Sequence[bytes]
) -> tuple[list[bytes], int] | None:
    """The containers array whose first element starts at ``start``, read by matching
    the ``previous`` containers' exact bytes in order; what lies between two matches
    (containers that changed, or were added) is read by msgspec. Returns the elements
    (the very ``previous`` objects where they match) and the index after the closing
    bracket, or None when the body does not follow the previous report closely enough
    (then the whole body is read instead).

    Sound because each element matched is a complete JSON value, and each stretch in
    between is checked to be a list of complete values: element boundaries found this
    way are the array's own. Whether the array is the body's top-level "containers" is
    checked by the caller.
    """
    out: list[bytes] = []
    p, k, n = start, 0, len(previous)
    if body.startswith(b"]", p):
        return out, p + 1
    while True:
        if k < n and body.startswith(previous[k], p):
            out.append(previous[k])
            p += len(previous[k])
            k += 1
        else:
            # Changed or added containers up to the next previous one found intact.
            for j in range(k, min(k + _ANCHOR_LOOKAHEAD, n)):
                # Found by its first bytes (they hold its id: a short needle is found
                # much faster than the whole document), then compared whole.
                q = body.find(b"," + previous[j][:_ANCHOR_PREFIX], p)
                if q > p and body.startswith(previous[j], q + 1):
                    break
            else:
                return None
            try:
                between = _ELEMENTS.decode(b"[" + body[p:q] + b"]")
            except msgspec.MsgspecError:
                return None
            if not between:
                return None
            out += [bytes(r) for r in between]
            p, k = q + 1, j
            continue
        if body.startswith(b",", p):
            p += 1
        elif body.startswith(b"]", p):
            return out, p + 1
        else:
            return None


def _split_like_previous(
    body: bytes, previous: Sequence[bytes]
) -> tuple[_Parts, list[bytes]] | None:
    """A body read with the host's previous containers as a guide (None: read it whole).

    An agent's report repeats most of its containers byte for byte; scanning them again
    was the largest part of reading a body. The array is located, matched against the
    previous containers (:func:`_containers_like`), and the rest of the body, with the
    array replaced by a one-element array of a random nonce, is read as usual: it must
    come back with exactly that nonce as its containers, which proves the array was the
    body's top-level (last) "containers" member, and the rest is checked like any body.
    """
    if not previous:
        return None
    at = body.find(_CONTAINERS_KEY)
    if at < 0:
        return None
    found = _containers_like(body, at + len(_CONTAINERS_KEY), previous)
    if found is None:
        return None
    raws, end = found
    try:
        parts = _PARTS.decode(body[:at] + _NONCE_ARRAY + body[end:])
    except msgspec.MsgspecError:
        return None
    if not (isinstance(parts.containers, list) and len(parts.containers) == 1):
        return None
    if bytes(parts.containers[0]) != _NONCE_RAW:
        return None
    return parts, raws


def split_report(body: bytes, previous: Sequence[bytes] = ()) -> SplitReport:
    """Check the JSON and the top-level fields of a schema-1 body; keep each container's
    raw JSON for :func:`validate_container`. Raises :class:`ReportInvalid`.

    ``previous``: the containers' raw JSON of the host's previous report, if known; an
    optimisation only (any previous gives the same result, or the same refusal).
    """
    fast = _split_like_previous(body, previous)
    if fast is not None:
        parts, raws = fast
    else:
        try:
            parts = _PARTS.decode(body)
        except msgspec.ValidationError as exc:  # well-formed JSON of the wrong shape
            raise ReportInvalid(
                "report does not match schema 1: " + _msgspec_explain(exc)
            ) from None
        except msgspec.DecodeError as exc:
            raise ReportInvalid(f"malformed JSON: {exc}") from None
        raws = parts.containers  # type: ignore[assignment]
    # The top level without the containers, re-assembled from the raw pieces, goes
    # through the documented model: the same rules and messages as a whole report.
    # The stats samples are read by msgspec first (see _FastStats); only when it
    # refuses them, or something else is wrong, does the model see them too.
    pieces = [
        key + raw
        for name, key in _HEADER_FIELDS
        if name != "stats" and (raw := getattr(parts, name))
    ]
    if raws is None:
        pieces.append(b'"containers":null')
    elif raws is not msgspec.UNSET:
        pieces.append(b'"containers":[]')
    header: AgentReport | None = None
    stats: dict[str, Any] | None = {}
    if parts.stats:
        try:
            stats = _STATS.decode(parts.stats)
        except msgspec.ValidationError:
            stats = None
    if stats is not None:
        with contextlib.suppress(ValidationError):
            header = AgentReport.model_validate_json(b"{" + b",".join(pieces) + b"}")
    if header is None:  # the model decides, with the samples, and says why
        if parts.stats:
            pieces.append(b'"stats":' + parts.stats)
        try:
            header = AgentReport.model_validate_json(b"{" + b",".join(pieces) + b"}")
        except ValidationError as exc:
            raise ReportInvalid(_explain(exc)) from None
    else:
        header.stats = stats
    assert isinstance(raws, list)  # absent or null failed above ("containers" required)
    if len(raws) > MAX_CONTAINERS:
        raise ReportInvalid(
            f"report does not match schema 1: containers: List should have at most "
            f"{MAX_CONTAINERS} items after validation, not {len(raws)}"
        )
    return SplitReport(header, raws if fast is not None else [bytes(r) for r in raws])


def validate_container(raw: bytes, index: int) -> AgentContainer:
    """One container's raw JSON against :class:`AgentContainer` (errors located as
    ``containers.<index>.<field>``). Raises :class:`ReportInvalid`."""
    try:
        return _CONTAINER.validate_json(raw)
    except ValidationError as exc:
        raise ReportInvalid(_explain(exc, prefix=("containers", index))) from None


def _msgspec_explain(exc: msgspec.ValidationError) -> str:
    # msgspec: "Expected `array | null`, got `object` - at `$.containers`"; its messages
    # name types, never values. The location is rewritten in pydantic's style.
    text = str(exc)
    what, sep, where = text.rpartition(" - at `")
    if not sep:
        return text
    loc = where.rstrip("`").removeprefix("$").lstrip(".")
    loc = re.sub(r"\[(\d+)\]", r".\1", loc).lstrip(".") or "(body)"
    return f"{loc}: {what}"
