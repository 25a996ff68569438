"""The ``ssh_targets`` table: where to connect, how to authenticate, which keys to trust."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from ..db import utcnow

AUTH_KINDS = ("key", "password", "certificate")


class SshTarget(SQLModel, table=True):
    __tablename__ = "ssh_targets"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=128)
    host: str = Field(max_length=253)
    port: int = 22
    username: str = Field(max_length=64)
    auth: str = Field(default="key", max_length=16)
    # Encrypted with app[SECRETS_KEY]; the API only ever says whether one is set.
    private_key_enc: str | None = None
    passphrase_enc: str | None = None
    password_enc: str | None = None
    certificate_enc: str | None = None
    # Ordered hop target ids: connect to jump[0], through it to jump[1], ..., then here.
    jump: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The only host keys ever trusted for this target ("ssh-ed25519 AAAA...").
    host_keys: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # A plugin's own per-target settings live in its own table (see ``fields``).
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
