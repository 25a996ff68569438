"""Per-lineage migrations: plugins added later or removed never break the upgrade."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from alembic import command
from archnest import MigrationLineage, create_app, hookimpl
from archnest.db import Database
from archnest.migrate import alembic_config, core_lineage, current, upgrade
from archnest.plugins import build_plugin_manager
from archnest.testing import make_user_headers

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


@pytest.fixture
def archnest_database_url(archnest_empty_database_url: str) -> str:
    """These tests build a database of an older day themselves: they start empty."""
    return archnest_empty_database_url


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


# docker_ssh's ``docker`` and ``sudo`` were columns of the core's ssh_targets up to
# core_0002 (when docker_ssh had no lineage); they now live in docker_ssh_targets.
TODAY_CORE_HEAD = "core_0002"
FLAGS = {
    "both": (True, True),
    "docker": (True, False),
    "sudo": (False, True),
    "none": (False, False),
}


def _to_revision(connection, lineage: MigrationLineage, revision: str) -> None:  # type: ignore[no-untyped-def]
    cfg = alembic_config(lineage)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def _database_of_today(db: Database) -> None:
    """The schema as the previous release made it, with targets carrying the flags."""
    async with db.engine.begin() as conn:
        await conn.run_sync(_to_revision, core_lineage(), TODAY_CORE_HEAD)
        now = datetime.now(UTC)
        for name, (docker, sudo) in FLAGS.items():
            await conn.execute(
                sa.text(
                    "INSERT INTO ssh_targets (name, host, port, username, auth, jump, host_keys,"
                    " docker, sudo, created_at, updated_at) VALUES (:name, 'h.example', 22,"
                    " 'u', 'key', '[]', '[]', :docker, :sudo, :now, :now)"
                ),
                {"name": name, "docker": docker, "sudo": sudo, "now": now},
            )


async def _flags(db: Database) -> dict[str, tuple[bool, bool]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT t.name, d.docker, d.sudo FROM docker_ssh_targets AS d"
                " JOIN ssh_targets AS t ON t.id = d.target_id"
            )
        )
        return {name: (bool(docker), bool(sudo)) for name, docker, sudo in rows}


async def _columns(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        cols = await conn.run_sync(lambda c: sa.inspect(c).get_columns(table))
    return {c["name"] for c in cols}


async def test_docker_ssh_flags_survive_the_move_to_its_own_table(
    aiohttp_client, archnest_settings, archnest_database_url
):
    db = Database(archnest_database_url)
    try:
        await _database_of_today(db)
        await upgrade(db.engine, build_plugin_manager(allow=["docker_ssh"]))
        assert not {"docker", "sudo"} & await _columns(db, "ssh_targets")
        assert "ssh_targets_docker_handoff" not in await _tables(db)
        # Targets with neither flag need no row: the defaults are false.
        assert await _flags(db) == {k: v for k, v in FLAGS.items() if any(v)}
    finally:
        await db.dispose()

    # The API shows the same values as before the upgrade.
    client = await aiohttp_client(create_app(archnest_settings))
    headers = await make_user_headers(client, "alice", "admin")
    r = await client.get("/api/ssh/targets", headers=headers)
    assert r.status == 200
    shown = {t["name"]: (t["docker"], t["sudo"]) for t in await r.json()}
    assert shown == FLAGS


async def test_docker_ssh_installed_after_the_core_upgrade_gets_the_flags(archnest_database_url):
    db = Database(archnest_database_url)
    try:
        await _database_of_today(db)
        # The core upgrades alone: its columns go, their values wait in the hand-off table.
        await upgrade(db.engine, build_plugin_manager(allow=[]))
        assert not {"docker", "sudo"} & await _columns(db, "ssh_targets")
        assert "docker_ssh_targets" not in await _tables(db)
        # A target deleted meanwhile does not come back as a docker_ssh row.
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM ssh_targets WHERE name = 'sudo'"))

        await upgrade(db.engine, build_plugin_manager(allow=["docker_ssh"]))
        assert await _flags(db) == {"both": (True, True), "docker": (True, False)}
        assert "ssh_targets_docker_handoff" not in await _tables(db)
        # Deleting a target takes its row along, whether docker_ssh is loaded or not.
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM ssh_targets WHERE name = 'both'"))
        assert await _flags(db) == {"docker": (True, False)}
    finally:
        await db.dispose()


def _db_upgrade(env: dict[str, str], plugins: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "archnest", "db", "upgrade"],
        env={**env, "ARCHNEST_PLUGINS": plugins},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "(behind)" not in r.stdout
    return r.stdout


async def test_db_upgrade_without_docker_ssh_loaded(tmp_path, archnest_database_url):
    db = Database(archnest_database_url)
    try:
        await _database_of_today(db)
    finally:
        await db.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHNEST_")}
    env.update(
        ARCHNEST_DATA_DIR=str(tmp_path / "data"), ARCHNEST_DATABASE_URL=archnest_database_url
    )

    out = _db_upgrade(env, "docker_tcp")
    assert "docker_tcp" in out and "docker_ssh" not in out
    assert "current=docker_ssh_0001" in _db_upgrade(env, "docker_tcp,docker_ssh")
    db = Database(archnest_database_url)
    try:
        assert await _flags(db) == {k: v for k, v in FLAGS.items() if any(v)}
    finally:
        await db.dispose()
