"""Fields a plugin adds to every SSH target, kept in the plugin's own table.

The core owns ``ssh_targets`` (where to connect, how to authenticate); a feature built on
the transport may need its own per-target settings (docker_ssh: ``docker`` and
``sudo``). It declares them with the ``archnest_ssh_target_fields`` hook: the core then
accepts them in ``POST``/``PATCH /api/ssh/targets``, shows them in every target it
returns and in ``ConnectSpec.extra``, and calls the plugin to store them in the same
transaction as the target itself. The core never imports the plugin, and a database
keeps working when the plugin is removed (its table is simply no longer read).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from ..errors import BadRequest
from ..keys import PM_KEY
from ..plugins import flatten


class SshTargetFields(ABC):
    """One plugin's extra fields of an SSH target.

    ``model``: a pydantic model of the fields, every one with a default (the value of a
    target the plugin has stored nothing for). It validates request bodies (strictly: a
    bool field takes only true or false) and describes the fields in the OpenAPI
    document. The methods run inside the core's session; the core commits.
    """

    model: ClassVar[type[BaseModel]]

    @abstractmethod
    async def load(
        self, session: AsyncSession, target_ids: Sequence[int]
    ) -> Mapping[int, Mapping[str, Any]]:
        """Stored values by target id; a target left out has the model's defaults."""

    @abstractmethod
    async def save(self, session: AsyncSession, target_id: int, values: Mapping[str, Any]) -> None:
        """Store every field of one target (validated, defaults filled in)."""

    @abstractmethod
    async def delete(self, session: AsyncSession, target_id: int) -> None:
        """Forget a target that is being deleted."""


def ssh_target_fields(app: web.Application) -> list[SshTargetFields]:
    """What the loaded plugins contribute; two plugins may not claim one field name."""
    found: list[SshTargetFields] = flatten(app[PM_KEY].hook.archnest_ssh_target_fields())
    seen: set[str] = set()
    for ext in found:
        names = set(ext.model.model_fields)
        if names & seen:
            raise RuntimeError(f"two plugins declare SSH target fields {sorted(names & seen)}")
        seen |= names
    return found


def field_names(fields: Sequence[SshTargetFields]) -> set[str]:
    return {name for ext in fields for name in ext.model.model_fields}


async def load_values(
    session: AsyncSession, fields: Sequence[SshTargetFields], target_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Every contributed field of each target (defaults where nothing is stored)."""
    out: dict[int, dict[str, Any]] = {tid: {} for tid in target_ids}
    for ext in fields:
        stored = await ext.load(session, target_ids) if target_ids else {}
        for tid in target_ids:
            out[tid].update(ext.model(**stored.get(tid, {})).model_dump())
    return out


async def save_values(
    session: AsyncSession,
    fields: Sequence[SshTargetFields],
    target_id: int,
    current: Mapping[str, Any],
    data: Mapping[str, Any],
) -> None:
    """Validate what ``data`` sets of each plugin's fields over ``current``, then store."""
    for ext in fields:
        names = ext.model.model_fields
        given = {k: v for k, v in data.items() if k in names}
        if not given and current:
            continue  # an update that does not touch this plugin's fields
        merged = {**{k: v for k, v in current.items() if k in names}, **given}
        try:
            values = ext.model.model_validate(merged, strict=True)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise BadRequest(f"{where}: {err['msg']}", code="invalid_target") from exc
        await ext.save(session, target_id, values.model_dump())
