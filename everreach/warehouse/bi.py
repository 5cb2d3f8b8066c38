"""A read-only database role for BI tools, limited to the dbt marts schema.

The role can read every table and view in `marts` — including the ones dbt rebuilds
later (default privileges of the role that runs dbt) — and nothing else: no raw tables,
no `auth.users`, no writes, no DDL.
"""

from __future__ import annotations

import contextlib
import re

import psycopg
from psycopg import sql

from everreach.warehouse.database import connect

MARTS_SCHEMA = "marts"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def create_bi_role(
    url: str, role: str, password: str | None = None, schema: str = MARTS_SCHEMA
) -> list[str]:
    """Create or update `role` as a read-only login on `schema`; returns what was done."""
    if not _ROLE_NAME.match(role):
        raise ValueError(f"invalid role name {role!r}: use lower-case letters, digits, _")
    done: list[str] = []
    ident = sql.Identifier(role)
    schema_ident = sql.Identifier(schema)
    with connect(url, autocommit=True) as conn, conn.transaction():
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        options = sql.SQL("login nosuperuser nocreatedb nocreaterole noinherit")
        if password:
            options = sql.SQL("{} password {}").format(options, sql.Literal(password))
        verb = "alter" if exists else "create"
        conn.execute(sql.SQL(verb + " role {} with {}").format(ident, options))
        done.append(f"{'altered' if exists else 'created'} role {role}")
        dbname = conn.execute("select current_database()").fetchone()[0]
        conn.execute(
            sql.SQL("grant connect on database {} to {}").format(sql.Identifier(dbname), ident)
        )
        conn.execute(sql.SQL("create schema if not exists {}").format(schema_ident))
        # nothing outside the marts: not the raw tables, not auth.users
        for other in ("public", "auth", "staging", "intermediate"):
            if conn.execute("select 1 from pg_namespace where nspname = %s", (other,)).fetchone():
                conn.execute(
                    sql.SQL("revoke all on all tables in schema {} from {}").format(
                        sql.Identifier(other), ident
                    )
                )
                conn.execute(
                    sql.SQL("revoke all on schema {} from {}").format(sql.Identifier(other), ident)
                )
        conn.execute(sql.SQL("revoke create on schema {} from {}").format(schema_ident, ident))
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(schema_ident, ident))
        conn.execute(
            sql.SQL("grant select on all tables in schema {} to {}").format(schema_ident, ident)
        )
        # tables dbt creates later (as the current user) are readable too
        conn.execute(
            sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
                schema_ident, ident
            )
        )
        done.append(f"granted read-only access to schema {schema} (current and future tables)")
    return done


def drop_bi_role(url: str, role: str, schema: str = MARTS_SCHEMA) -> None:
    """Remove the role and its grants (tests and decommissioning)."""
    ident = sql.Identifier(role)
    with connect(url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
            return
        with contextlib.suppress(psycopg.errors.InvalidSchemaName):
            conn.execute(
                sql.SQL(
                    "alter default privileges in schema {} revoke select on tables from {}"
                ).format(sql.Identifier(schema), ident)
            )
        conn.execute(sql.SQL("drop owned by {}").format(ident))
        conn.execute(sql.SQL("drop role {}").format(ident))
