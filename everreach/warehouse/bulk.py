"""Set-based loading: stream rows through COPY, then replace a window in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql


def copy_rows(
    cur: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Stream `rows` (tuples in `columns` order) into `table` with COPY; returns the count.

    Rows are written as they come, so memory does not grow with the row count. `table` may
    be schema-qualified (`schema.table`).
    """
    ident = sql.Identifier(*table.split("."))
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    count = 0
    with cur.copy(sql.SQL("copy {} ({}) from stdin").format(ident, cols)) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def create_temp_like(
    cur: psycopg.Cursor, temp_name: str, table: str, columns: Sequence[str]
) -> None:
    """A temporary staging table with `columns` of `table` (dropped at commit)."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    cur.execute(
        sql.SQL(
            "create temporary table {} on commit drop as select {} from {} with no data"
        ).format(sql.Identifier(temp_name), cols, sql.Identifier(*table.split(".")))
    )


def insert_via_stage(
    cur: psycopg.Cursor,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    stage: str,
) -> int:
    """COPY `rows` into a temporary stage like `table`, then insert them in one statement.

    Runs inside the caller's transaction (the stage is dropped at commit), so a caller can
    delete a window and insert its replacement atomically. Returns the rows inserted.
    """
    create_temp_like(cur, stage, table, columns)
    copy_rows(cur, stage, columns, rows)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    cur.execute(
        sql.SQL("insert into {} ({}) select {} from {}").format(
            sql.Identifier(*table.split(".")), cols, cols, sql.Identifier(stage)
        )
    )
    return cur.rowcount
