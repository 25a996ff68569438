"""The normalised container models (schemas in docs/api.md), shared by every source,
and their formats (timestamps, container references). Docker's JSON becomes these models in
:mod:`.normalise`."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from .errors import BadRequest, NotFound

State = Literal["running", "paused", "exited", "created", "restarting", "dead", "removing"]
STATES: tuple[str, ...] = ("running", "paused", "exited", "created", "restarting", "dead")

# A container ref is a container id (hex, 12-64) or a name. Anything else is refused
# before any host is contacted; the SSH source additionally single-quotes what passes.
REF_PATTERN = re.compile(r"^(?:[0-9a-f]{12,64}|[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$")
ACTIONS: tuple[str, ...] = ("start", "stop", "restart", "pause", "unpause", "kill", "remove")


def validate_ref(ref: str) -> str:
    """Return ``ref`` if it is a valid container id or name, else raise 400."""
    if not isinstance(ref, str) or not REF_PATTERN.fullmatch(ref):
        raise BadRequest("invalid container reference", code="invalid_ref")
    return ref


MAX_ROW_ID = 2**31 - 1  # the largest id an INTEGER primary key holds on PostgreSQL

# A row id in a request body: larger values would make PostgreSQL fail the query (a 500)
# where SQLite would just find nothing, so the model refuses them with a 400 instead.
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


def parse_row_id(raw: str, what: str, code: str = "unknown_host") -> int:
    """A database id from a path or query, or 404 (never a 500 on odd input).

    ``str.isdigit`` alone accepts "²" (which ``int`` refuses), and ids too large for the
    column make PostgreSQL fail the query: both are simply unknown.
    """
    if raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= MAX_ROW_ID:
        return int(raw)
    raise NotFound(f"unknown {what} {raw[:64]!r}", code=code)


def validate_action(action: str) -> str:
    if action not in ACTIONS:
        raise BadRequest(
            f"unknown action; expected one of: {', '.join(ACTIONS)}", code="invalid_action"
        )
    return action


# The model's one time format: ISO 8601 in UTC with "Z", in whole seconds. Seconds
# because the Engine's list rows and the docker CLI carry nothing finer, and a
# container's times must read the same whichever source (and list or detail) gave them.
# Log lines are the exception: their order within a second matters (``fraction``).
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
_CLI_TIME = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.\d+)? ([+-]\d{4})")


def _render(moment: datetime, fraction: bool) -> str:
    moment = moment.astimezone(UTC)
    if not fraction:
        moment = moment.replace(microsecond=0)  # truncated, as Docker's own seconds are
    return moment.isoformat().replace("+00:00", "Z")


# Cached: every listing and every agent report renders the same times again.
@functools.lru_cache(maxsize=4096)
def _iso_from_unix(value: float, fraction: bool) -> str:
    return _render(datetime.fromtimestamp(value, UTC), fraction)


@functools.lru_cache(maxsize=16384)
def _iso_from_text(text: str, fraction: bool) -> str | None:
    text = text.strip()
    if not text or text.startswith("0001-01-01"):
        return None  # Docker's zero time: "never"
    m = _RFC3339.match(text)
    if m:
        whole, frac, tz = m.groups()
        # Docker gives nanoseconds; Python parses at most microseconds.
        offset = "+00:00" if tz in (None, "Z") else tz
        try:
            parsed = datetime.fromisoformat(whole + (frac or "")[:7] + offset)
        except ValueError:
            return text
        return _render(parsed, fraction)
    m = _CLI_TIME.match(text)  # the docker CLI's "2024-01-02 03:04:05 +0000 UTC"
    if m:
        stamp = f"{m.group(1)} {m.group(2)} {m.group(3)}"
        try:
            parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S %z")
        except ValueError:
            return text
        return _render(parsed, fraction)
    return text


def iso_utc(value: Any, *, fraction: bool = False) -> str | None:
    """A timestamp (unix seconds, datetime, Docker's RFC 3339 or the docker CLI's format)
    as ISO 8601 UTC in whole seconds (``2024-01-02T03:04:05Z``); ``fraction=True`` keeps
    the microseconds (log lines). None, empty, zero and Docker's zero time are None."""
    if type(value) is str:  # the common case first: inspect and agent timestamps
        return _iso_from_text(value, fraction) if value else None
    if value is None:
        return None
    if isinstance(value, int | float):
        return _iso_from_unix(value, fraction) if value > 0 else None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return _render(value, fraction)
    return _iso_from_text(str(value), fraction) if str(value) else None


class Port(BaseModel):
    private: int
    public: int | None = None
    type: str = "tcp"
    ip: str | None = None


class Network(BaseModel):
    name: str
    ip: str | None = None
    mac: str | None = None
    gateway: str | None = None


class Mount(BaseModel):
    type: str | None = None
    source: str | None = None
    destination: str
    mode: str | None = None
    rw: bool = True


class EnvVar(BaseModel):
    name: str
    value: str
    masked: bool = False


class Stats(BaseModel):
    cpu_percent: float | None = None
    mem_usage_bytes: int | None = None
    mem_limit_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    block_read_bytes: int | None = None
    block_write_bytes: int | None = None
    pids: int | None = None


class ContainerSummary(BaseModel):
    """One row of a container list."""

    id: str
    name: str
    image: str
    state: str
    status: str = ""
    created: str | None = None
    ports: list[Port] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    host_id: str = ""


class ContainerDetail(ContainerSummary):
    """The detail view; ``stats`` is None when the source has no sample."""

    command: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int | None = None
    health: str | None = None
    networks: list[Network] = Field(default_factory=list)
    mounts: list[Mount] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    stats: Stats | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class LogLine(BaseModel):
    stream: Literal["stdout", "stderr"] = "stdout"
    text: str
    ts: str | None = None
