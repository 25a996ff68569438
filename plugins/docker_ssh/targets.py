"""Which SSH targets are Docker hosts, and whether docker runs under ``sudo -n``.

The core owns the targets (``ssh_targets``); these two fields are this plugin's, kept in
its own table and contributed to ``/api/ssh/targets`` through the
``archnest_ssh_target_fields`` hook. A row is removed with its target (``ON DELETE
CASCADE``), also while this plugin is not loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from archnest import Database
from archnest.ssh import SshTarget, SshTargetFields
from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, Integer, delete
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession


class DockerSshTarget(SQLModel, table=True):
    __tablename__ = "docker_ssh_targets"

    target_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("ssh_targets.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        )
    )
    docker: bool = False
    sudo: bool = False


class DockerSshFields(BaseModel):
    """The fields as the targets API takes and shows them (defaults: neither)."""

    docker: bool = False
    sudo: bool = False


class DockerSshTargetFields(SshTargetFields):
    model = DockerSshFields

    async def load(
        self, session: AsyncSession, target_ids: Sequence[int]
    ) -> dict[int, dict[str, Any]]:
        query = select(DockerSshTarget).where(
            DockerSshTarget.target_id.in_(list(target_ids))  # type: ignore[attr-defined]
        )
        return {
            r.target_id: {"docker": r.docker, "sudo": r.sudo}
            for r in (await session.exec(query)).all()
        }

    async def save(self, session: AsyncSession, target_id: int, values: Mapping[str, Any]) -> None:
        row = await session.get(DockerSshTarget, target_id) or DockerSshTarget(target_id=target_id)
        row.docker = values["docker"]
        row.sudo = values["sudo"]
        session.add(row)

    async def delete(self, session: AsyncSession, target_id: int) -> None:
        # Run at once, before the core's delete of the target is flushed (the database
        # would cascade it anyway; this keeps the session's view consistent).
        await session.exec(
            delete(DockerSshTarget).where(DockerSshTarget.target_id == target_id)  # type: ignore[arg-type]
        )


async def docker_targets(db: Database) -> list[SshTarget]:
    """The targets flagged ``docker``: the hosts of the ``ssh`` source, in one query (the
    all-hosts page asks for them on every refresh)."""
    async with db.session() as s:
        query = (
            select(SshTarget)
            .join(DockerSshTarget, DockerSshTarget.target_id == SshTarget.id)  # type: ignore[arg-type]
            .where(DockerSshTarget.docker == True)  # noqa: E712
            .order_by(SshTarget.id)  # type: ignore[arg-type]
        )
        return list((await s.exec(query)).all())
