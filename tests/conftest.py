"""Shared fixtures: a private, migrated Postgres database per test session, and the sandbox.

The database server is `EVERREACH_TEST_DATABASE_URL` (or `DATABASE_URL`) when set, else the
embedded Postgres. Each test session creates its own database with a unique name and drops
it at the end, so parallel sessions and developers never share state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from everreach.warehouse import database, migrate
from everreach.warehouse.settings import WarehouseSettings

_RAW_SCHEMAS = ("public", "auth")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use the database (the server_url fixture): CI's second "
        "pass, against the server Postgres, where the rest would only repeat the first pass",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-tests-only"):
        return
    kept, left = [], []
    for item in items:
        (kept if "server_url" in getattr(item, "fixturenames", ()) else left).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def _server_url() -> str:
    settings = WarehouseSettings.from_env()  # both URLs validated
    url = settings.test_database_url or settings.database_url
    return url if url else database.start_embedded()


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the Postgres server the tests use (database `postgres`)."""
    return database.with_database(_server_url(), "postgres")


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated to the latest schema."""
    name = f"everreach_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(server_url, name)
    migrate.upgrade(url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = %s and pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'drop database if exists "{name}"')


def truncate_all(conn: psycopg.Connection) -> None:
    """Empty every table of the raw schemas (keeps the migrations record)."""
    tables = conn.execute(
        "select quote_ident(schemaname) || '.' || quote_ident(tablename) from pg_tables "
        "where schemaname = any(%s) and tablename <> 'everreach_schema_migrations'",
        (list(_RAW_SCHEMAS),),
    ).fetchall()
    if tables:
        conn.execute("truncate " + ", ".join(t[0] for t in tables) + " restart identity cascade")


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the session database, with all tables emptied first."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        truncate_all(conn)
        yield conn


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[object]:
    """A running local Meta sandbox (small, seeded); `.base_url`, `.sandbox`, `.config`.

    Parametrize indirectly with a dict of `SandboxConfig` fields to change it.
    """
    from everreach.sandbox.testing import running_sandbox

    with running_sandbox(**(getattr(request, "param", None) or {})) as handle:
        yield handle
