"""Per-lineage migrations: plugins added later or removed never break the upgrade."""

from types import SimpleNamespace

import sqlalchemy as sa
from archnest import MigrationLineage, create_app, hookimpl
from archnest.db import Database
from archnest.migrate import current, upgrade
from archnest.plugins import build_plugin_manager

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "extra_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("extra_things", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade():
    op.drop_table("extra_things")
"""


def _lineage_plugin(tmp_path):
    versions = tmp_path / "extra_versions"
    versions.mkdir()
    (versions / "extra_0001.py").write_text(REVISION)

    @hookimpl
    def archnest_migrations():
        return MigrationLineage("extra", versions)

    return SimpleNamespace(__name__="extra_plugin", archnest_migrations=archnest_migrations)


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_plugin_added_later_then_removed(tmp_path, archnest_database_url):
    db = Database(archnest_database_url)
    try:
        core_only = build_plugin_manager(allow=[])
        await upgrade(db.engine, core_only)
        assert "users" in await _tables(db)
        assert "extra_things" not in await _tables(db)

        with_extra = build_plugin_manager(allow=[], extra=[_lineage_plugin(tmp_path)])
        await upgrade(db.engine, with_extra)
        tables = await _tables(db)
        assert {"extra_things", "alembic_version_extra", "alembic_version"} <= tables
        state = await current(db.engine, with_extra)
        assert state["extra"] == {"current": ["extra_0001"], "head": ["extra_0001"]}
        assert state["core"]["current"] == state["core"]["head"]

        # The plugin is uninstalled: its version table stays, upgrading the rest still works.
        await upgrade(db.engine, core_only)
        assert set(await current(db.engine, core_only)) == {"core"}
        # Upgrading twice is a no-op.
        await upgrade(db.engine, with_extra)
    finally:
        await db.dispose()


async def test_app_start_migrates_all_loaded_lineages(aiohttp_client, archnest_settings, tmp_path):
    app = create_app(archnest_settings, extra_plugins=[_lineage_plugin(tmp_path)])
    client = await aiohttp_client(app)
    from archnest import DB_KEY

    assert "extra_things" in await _tables(client.app[DB_KEY])
