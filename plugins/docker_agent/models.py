"""The plugin's tables: the latest accepted report per host (its containers apart), and
the enrolled hosts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel

TABLE = "docker_agent_reports"
CONTAINERS_TABLE = "docker_agent_containers"
ENROLLMENTS_TABLE = "docker_agent_enrollments"


class DockerAgentReport(SQLModel, table=True):
    """One row per host, replaced (upsert) by each accepted report: what changes with
    every report (times, counts, the stats samples). The containers are apart
    (:class:`DockerAgentContainers`), written only when they changed.
    """

    __tablename__ = TABLE

    host: str = Field(primary_key=True, max_length=253)
    agent_version: str = Field(max_length=64)
    schema_version: int
    # Naive UTC in plain DateTime columns (SQLModel's own type insists on tz-aware
    # values). The agent's clock, shown to users; never used for staleness.
    reported_at: datetime = Field(sa_column=Column(DateTime(), nullable=False))
    # The server's clock (naive UTC) when the report was stored: staleness uses this,
    # so a host with a wrong clock is still judged correctly.
    received_at: datetime = Field(sa_column=Column(DateTime(), nullable=False, index=True))
    container_count: int
    running_count: int
    # Accepted reports since the row was created (lets the benchmark prove zero loss).
    report_count: int = 1
    payload_bytes: int
    engine_json: str = Field(sa_column=Column(Text, nullable=False))
    host_facts_json: str = Field(sa_column=Column(Text, nullable=False))
    # The report's stats samples by full container id (JSON object), as validated.
    stats_json: str = Field(sa_column=Column(Text, nullable=False))


class DockerAgentContainers(SQLModel, table=True):
    """A host's normalised containers (docs/api.md) without their stats, as one JSON
    array: a report's containers are always read and written whole, so per-container
    rows would only multiply writes on the ingest path.

    Apart from the report's row because they rarely change between two reports (an
    agent reports every 30 s; its containers change when one starts, stops or is
    replaced) while the report's row changes every time: a report that changed no
    container rewrites the small row only, not the ~80 kB of a 50-container host.
    """

    __tablename__ = CONTAINERS_TABLE

    host: str = Field(primary_key=True, max_length=253)
    containers_json: str = Field(sa_column=Column(Text, nullable=False))


class DockerAgentEnrollment(SQLModel, table=True):
    """A host enrolled with its own agent token (docs/docker-agent-monitoring.md).

    Only the SHA-256 of the token is kept: the token is random (256 bits), so a fast
    hash is as good as a slow one and lets the ingest look a token up by its hash.
    A revoked host keeps its row (and its last report) until it is enrolled again.
    """

    __tablename__ = ENROLLMENTS_TABLE

    host: str = Field(primary_key=True, max_length=253)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    # Naive UTC, like the reports table.
    created_at: datetime = Field(sa_column=Column(DateTime(), nullable=False))
    token_issued_at: datetime = Field(sa_column=Column(DateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(), nullable=True))
