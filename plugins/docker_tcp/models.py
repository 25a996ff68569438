"""The plugin's tables: configured engines and a few persistent flags."""

from __future__ import annotations

from datetime import datetime

from archnest import utcnow
from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel


class DockerEngine(SQLModel, table=True):
    """One Docker Engine API endpoint.

    TLS client certificate and key are stored encrypted (``SecretBox``); the CA is a
    public certificate and stays readable so an admin can compare fingerprints.
    """

    __tablename__ = "docker_tcp_engines"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True, index=True)
    url: str = Field(max_length=1024)
    tls_verify: bool = True
    tls_ca: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    tls_cert_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    tls_key_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class DockerTcpFlag(SQLModel, table=True):
    """Persistent one-off facts, e.g. that the local socket was added (or removed) once."""

    __tablename__ = "docker_tcp_flags"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(default="", max_length=255)
