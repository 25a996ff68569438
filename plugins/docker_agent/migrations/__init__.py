"""Alembic lineage ``docker_agent`` (version table ``alembic_version_docker_agent``)."""
