"""The plugin's own table. Its schema is created by the plugin's own migration
lineage (``migrations/``), never by ``create_all``."""

from __future__ import annotations

from datetime import datetime

from archnest import utcnow
from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

TABLE = "example_notes"


class ExampleNote(SQLModel, table=True):
    __tablename__ = TABLE

    id: int | None = Field(default=None, primary_key=True)
    host_id: str = Field(max_length=240, index=True)
    container: str = Field(max_length=128, index=True)
    text: str = Field(max_length=2000)
    author: str = Field(max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "host_id": self.host_id,
            "container": self.container,
            "text": self.text,
            "author": self.author,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }
