"""The agent's report, schema 1: validation model and normalisation.

The agent sends trimmed ``docker inspect`` documents plus a ``docker stats`` sample
(see docs/docker-agent-monitoring.md). Validation is one pydantic schema applied
straight to the request bytes (``model_validate_json``: no intermediate parse);
unknown fields are dropped. :mod:`.normalise` then reshapes what passed.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal, Required

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
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
    containers: list[AgentContainer] = Field(max_length=10000)
    stats: dict[ShortStr, AgentStats] = Field(default_factory=dict)


class ReportInvalid(ValueError):
    """The body is not JSON or not schema 1; ``str()`` is a message safe to return."""


def parse_report(body: bytes) -> AgentReport:
    """Validate raw request bytes as a schema-1 report, or raise :class:`ReportInvalid`."""
    try:
        return AgentReport.model_validate_json(body)
    except ValidationError as exc:
        raise ReportInvalid(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    # Only locations and pydantic's messages: the offending values are never echoed
    # back (they could be secrets from a broken agent).
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('msg', '')}"
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(body)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "report does not match schema 1: " + "; ".join(parts) + more
