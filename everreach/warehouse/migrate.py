"""Versioned schema migrations: `everreach/warehouse/migrations/NNNN_name.sql`.

Each file runs once, in its own transaction, in version order, under an advisory lock (two
processes upgrading at once take turns). Applied versions are recorded with a checksum in
`everreach_schema_migrations`; a file edited after it was applied, or a database that has a
version this code does not know, is a migration conflict and fails with a clear message
instead of guessing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from everreach.warehouse.database import connect

_LOCK_KEY = 7_424_201_001  # arbitrary, fixed: the advisory lock of schema upgrades
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationConflictError(RuntimeError):
    """The database's recorded migrations disagree with the code's migration files."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The migration files shipped with the package, in version order."""
    found = []
    for entry in resources.files("everreach.warehouse").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(match.group(1), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationConflictError(f"two migration files share a version: {versions}")
    return found


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        create table if not exists everreach_schema_migrations (
            version text primary key,
            name text not null,
            checksum text not null,
            applied_at timestamptz not null default now()
        )
        """
    )


def applied_migrations(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """version → (name, checksum) of what the database has applied."""
    exists = conn.execute("select to_regclass('everreach_schema_migrations')").fetchone()[0]
    if exists is None:
        return {}
    rows = conn.execute(
        "select version, name, checksum from everreach_schema_migrations"
    ).fetchall()
    return {v: (n, c) for v, n, c in rows}


def _check_conflicts(applied: dict[str, tuple[str, str]], available: list[Migration]) -> None:
    known = {m.version: m for m in available}
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationConflictError(
                f"the database has migration {version}_{name} applied, which this code does not "
                f"have: the database was upgraded by a newer EverReach. Upgrade this checkout "
                f"(git pull) or point DATABASE_URL at another database."
            )
        if migration.checksum != checksum:
            raise MigrationConflictError(
                f"migration {version}_{name} was changed after it was applied to this database. "
                f"Never edit an applied migration: restore the file and add a new migration "
                f"with the change."
            )


def status(url: str | None = None) -> list[tuple[Migration, bool]]:
    """Every available migration and whether the database has it."""
    available = available_migrations()
    with connect(url) as conn:
        applied = applied_migrations(conn)
    _check_conflicts(applied, available)
    return [(m, m.version in applied) for m in available]


def upgrade(url: str | None = None, *, echo=None) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    available = available_migrations()
    done: list[str] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            _ensure_table(conn)
            applied = applied_migrations(conn)
            _check_conflicts(applied, available)
            for migration in available:
                if migration.version in applied:
                    continue
                label = f"{migration.version}_{migration.name}"
                with conn.transaction():
                    try:
                        conn.execute(migration.sql)
                    except psycopg.Error as exc:
                        raise MigrationConflictError(
                            f"migration {label} failed: {exc.diag.message_primary or exc}. "
                            f"Nothing of it was applied (it runs in one transaction)."
                        ) from exc
                    conn.execute(
                        "insert into everreach_schema_migrations (version, name, checksum) "
                        "values (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                done.append(label)
                if echo:
                    echo(f"applied {label}")
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done
