"""Alembic environment for every lineage (core and plugins).

``archnest.migrate`` passes an open connection and the lineage's version table in
``config.attributes``; when run by the ``alembic`` command directly it opens its own.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

config = context.config
target_metadata = SQLModel.metadata
version_table = config.attributes.get("version_table", "alembic_version")
lineage_tables = config.attributes.get("tables")


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # Autogenerate per plugin: only this lineage's tables are compared.
    if type_ == "table" and lineage_tables is not None:
        return name in lineage_tables
    return True


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(_configure)
    await engine.dispose()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        version_table=version_table,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    _configure(connection)
else:
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url")))
