"""Alembic revisions of the ``example`` lineage (version table ``alembic_version_example``)."""
