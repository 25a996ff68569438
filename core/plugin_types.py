"""Small value types returned by hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MigrationLineage:
    """One Alembic lineage: ``versions_dir`` holds its revisions.

    Each lineage keeps its own version table (``alembic_version_<name>``; the core's is
    ``alembic_version``) so installing or removing a plugin never confuses the others.
    """

    name: str
    versions_dir: Path

    @property
    def version_table(self) -> str:
        return "alembic_version" if self.name == "core" else f"alembic_version_{self.name}"


@dataclass(frozen=True)
class Assets:
    """Templates are addressed as ``"<namespace>/<file>"``; static files under
    ``/static/<namespace>/``."""

    namespace: str
    templates: Path | None = None
    static: Path | None = None


@dataclass(frozen=True)
class NavItem:
    title: str
    href: str
    order: int = 100
    admin_only: bool = False


@dataclass
class Panel:
    """A container detail tab: either a template (+context) or pre-escaped ``html``."""

    id: str
    title: str
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    html: str | None = None
