"""Running every lineage's migrations: the core first, then each plugin's.

Each lineage has its own version table, so a plugin installed later just gets its own
lineage applied, and a removed plugin's leftover version table is simply ignored.
"""

from __future__ import annotations

from pathlib import Path

import pluggy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from .plugin_types import MigrationLineage
from .plugins import flatten


def _script_location() -> Path:
    # Installed from a wheel, the migrations package sits inside ``archnest``.
    import archnest.migrations as pkg

    return Path(pkg.__file__).resolve().parent


def core_lineage() -> MigrationLineage:
    return MigrationLineage("core", _script_location() / "versions")


def lineages(pm: pluggy.PluginManager) -> list[MigrationLineage]:
    found: list[MigrationLineage] = flatten(pm.hook.archnest_migrations())
    names = {lin.name for lin in found}
    if len(names) != len(found):
        raise RuntimeError("two plugins declare the same migration lineage name")
    return [core_lineage(), *sorted(found, key=lambda lin: lin.name)]


def alembic_config(lineage: MigrationLineage, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location()))
    cfg.set_main_option("version_locations", str(lineage.versions_dir))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["version_table"] = lineage.version_table
    return cfg


def _upgrade_sync(connection, all_lineages: list[MigrationLineage]) -> None:  # type: ignore[no-untyped-def]
    for lineage in all_lineages:
        cfg = alembic_config(lineage)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")


def _current_sync(connection, all_lineages: list[MigrationLineage]) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    out: dict[str, dict] = {}
    for lineage in all_lineages:
        ctx = MigrationContext.configure(connection, opts={"version_table": lineage.version_table})
        script = ScriptDirectory.from_config(alembic_config(lineage))
        out[lineage.name] = {
            "current": sorted(ctx.get_current_heads()),
            "head": sorted(script.get_heads()),
        }
    return out


async def upgrade(engine: AsyncEngine, pm: pluggy.PluginManager) -> None:
    """Bring every lineage of the loaded plugins to its head."""
    all_lineages = lineages(pm)
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_sync, all_lineages)


async def current(engine: AsyncEngine, pm: pluggy.PluginManager) -> dict[str, dict]:
    """Current and head revisions per lineage."""
    all_lineages = lineages(pm)
    async with engine.connect() as conn:
        return await conn.run_sync(_current_sync, all_lineages)
