"""Alembic revisions of the ``docker_tcp`` lineage."""
