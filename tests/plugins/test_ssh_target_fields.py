"""``archnest_ssh_target_fields``: a plugin's own per-target fields in the targets API,
stored in the plugin's own table in the same transaction as the target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from archnest import DB_KEY, MigrationLineage, Settings, create_app, hookimpl
from archnest.ssh import SshTargetFields
from archnest.testing import make_user_headers
from pydantic import BaseModel
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "fieldtest_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "fieldtest_targets",
        sa.Column(
            "target_id",
            sa.Integer(),
            sa.ForeignKey("ssh_targets.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("colour", sa.String(16), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
    )


def downgrade():
    op.drop_table("fieldtest_targets")
"""


class ColourFields(BaseModel):
    colour: str = "grey"
    weight: int = 1


TABLE = sa.table(
    "fieldtest_targets", sa.column("target_id"), sa.column("colour"), sa.column("weight")
)


class ColourStore(SshTargetFields):
    model = ColourFields

    async def load(
        self, session: AsyncSession, target_ids: Sequence[int]
    ) -> dict[int, dict[str, Any]]:
        query = select(TABLE.c.target_id, TABLE.c.colour, TABLE.c.weight).where(
            TABLE.c.target_id.in_(list(target_ids))
        )
        rows = (await session.exec(query)).all()
        return {tid: {"colour": c, "weight": w} for tid, c, w in rows}

    async def save(self, session: AsyncSession, target_id: int, values: Mapping[str, Any]) -> None:
        await self.delete(session, target_id)
        await session.exec(sa.insert(TABLE).values(target_id=target_id, **values))

    async def delete(self, session: AsyncSession, target_id: int) -> None:
        await session.exec(sa.delete(TABLE).where(TABLE.c.target_id == target_id))


def _plugin(tmp_path: Path) -> SimpleNamespace:
    versions = tmp_path / "fieldtest_versions"
    versions.mkdir(exist_ok=True)
    (versions / "fieldtest_0001.py").write_text(REVISION)

    @hookimpl
    def archnest_migrations() -> MigrationLineage:
        return MigrationLineage("fieldtest", versions)

    @hookimpl
    def archnest_ssh_target_fields() -> SshTargetFields:
        return ColourStore()

    return SimpleNamespace(
        __name__="fieldtest",
        archnest_migrations=archnest_migrations,
        archnest_ssh_target_fields=archnest_ssh_target_fields,
    )


@pytest.fixture
def archnest_app(archnest_settings: Settings, tmp_path: Path) -> web.Application:
    return create_app(archnest_settings, extra_plugins=[_plugin(tmp_path)])


def _target(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "host": "h.example", "username": "u", "auth": "password",
            "password": "pw", **more}  # fmt: skip


async def _stored(client: TestClient) -> dict[int, tuple[str, int]]:
    async with client.app[DB_KEY].engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT target_id, colour, weight FROM fieldtest_targets")
        )
        return {tid: (colour, weight) for tid, colour, weight in rows}


async def test_archnest_ssh_target_fields(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    c, h = archnest_client, admin_headers
    r = await c.post("/api/ssh/targets", json=_target("a", colour="red"), headers=h)
    assert r.status == 201, await r.text()
    a = await r.json()
    assert (a["colour"], a["weight"]) == ("red", 1)  # the default for what was not sent
    assert await _stored(c) == {a["id"]: ("red", 1)}

    # PATCH merges over the stored values; GET shows them, one target or all.
    r = await c.patch(f"/api/ssh/targets/{a['id']}", json={"weight": 5}, headers=h)
    assert (await r.json())["colour"] == "red" and (await r.json())["weight"] == 5
    r = await c.patch(f"/api/ssh/targets/{a['id']}", json={"name": "a2"}, headers=h)
    assert ((await r.json())["colour"], (await r.json())["weight"]) == ("red", 5)
    one = await (await c.get(f"/api/ssh/targets/{a['id']}", headers=h)).json()
    assert (one["name"], one["colour"], one["weight"]) == ("a2", "red", 5)
    listed = await (await c.get("/api/ssh/targets", headers=h)).json()
    assert [(t["colour"], t["weight"]) for t in listed] == [("red", 5)]

    # Strict validation, 400 before anything is stored: no target, no row.
    for bad in ({"weight": "5"}, {"weight": True}, {"colour": 7}):
        r = await c.post("/api/ssh/targets", json=_target("b", **bad), headers=h)
        assert r.status == 400, bad
        assert (await r.json())["error"]["code"] == "invalid_body"
    r = await c.patch(f"/api/ssh/targets/{a['id']}", json={"name": "a3", "weight": "x"}, headers=h)
    assert r.status == 400
    assert len(await (await c.get("/api/ssh/targets", headers=h)).json()) == 1
    assert (await (await c.get(f"/api/ssh/targets/{a['id']}", headers=h)).json())["name"] == "a2"
    assert await _stored(c) == {a["id"]: ("red", 5)}

    # A rejected target (name taken) leaves no plugin row behind either.
    r = await c.post("/api/ssh/targets", json=_target("a2", colour="blue"), headers=h)
    assert r.status == 409
    assert await _stored(c) == {a["id"]: ("red", 5)}

    # The document describes the fields this app accepts and returns.
    doc = await (await c.get("/api/openapi.json", headers=h)).json()
    schemas = doc["components"]["schemas"]
    assert {"colour", "weight"} <= set(schemas["SshTargetView"]["required"])
    assert {"colour", "weight"} <= set(schemas["SshTargetUpdate"]["properties"])

    assert (await c.delete(f"/api/ssh/targets/{a['id']}", headers=h)).status == 200
    assert await _stored(c) == {}


async def test_fields_of_a_plugin_not_loaded_are_refused(
    aiohttp_client, archnest_settings: Settings
) -> None:
    client = await aiohttp_client(create_app(archnest_settings))
    h = await make_user_headers(client, "alice", "admin")
    r = await client.post("/api/ssh/targets", json=_target("a", colour="red"), headers=h)
    assert r.status == 400
    assert "colour" in (await r.json())["error"]["message"]
    r = await client.post("/api/ssh/targets", json=_target("a"), headers=h)
    assert r.status == 201 and "colour" not in await r.json()


def test_two_plugins_may_not_claim_one_field(archnest_settings: Settings, tmp_path: Path) -> None:
    class Again(SimpleNamespace):
        pass

    twin = Again(
        __name__="fieldtest_twin",
        archnest_ssh_target_fields=_plugin(tmp_path).archnest_ssh_target_fields,
    )
    with pytest.raises(RuntimeError, match="colour"):
        create_app(archnest_settings, extra_plugins=[_plugin(tmp_path), twin])
