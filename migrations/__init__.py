"""Alembic environment shared by every lineage, and the core lineage in ``versions/``."""
