"""The warehouse (Postgres) as a Dagster resource."""

from __future__ import annotations

import psycopg
from dagster import ConfigurableResource
from pydantic import Field

from everreach.warehouse import database


class WarehouseResource(ConfigurableResource):
    """Connections to the EverReach warehouse.

    `database_url` empty means: `DATABASE_URL` from the environment, else the embedded
    Postgres (started on demand).
    """

    database_url: str = Field(
        default="",
        description="PostgreSQL URL; empty = DATABASE_URL or the embedded server.",
    )

    def url(self) -> str:
        """The resolved database URL."""
        if self.database_url:
            database.validate_database_url(self.database_url, "warehouse.database_url")
            return self.database_url
        return database.resolve_database_url()

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        """A new psycopg connection (use as a context manager)."""
        return database.connect(self.url(), autocommit=autocommit)
