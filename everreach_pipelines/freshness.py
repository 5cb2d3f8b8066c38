"""Freshness asset checks: warn when a table's own load timestamp is older than a max age.

Each domain builds its checks with `freshness_check` (registered in the domain's `defs`)
and documents the max ages in its README. Dagster runs them after the asset in any job
that selects it, or on their own from the UI.
"""

# No `from __future__ import annotations`: Dagster reads the resource annotation at runtime.
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from everreach_pipelines.resources.warehouse import WarehouseResource


def freshness_result(
    table: str, column: str, last: datetime | None, max_age: timedelta
) -> dg.AssetCheckResult:
    """WARN-level outcome: `table.column` was last written at `last` (None: empty).
    The metadata key is `last_<column>` (`column` may already start with `last_`)."""
    key = column if column.startswith("last_") else f"last_{column}"
    max_hours = max_age.total_seconds() / 3600
    if last is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{table} has no {column}",
            metadata={key: "never", "max_age_hours": max_hours},
        )
    age = datetime.now(UTC) - last
    return dg.AssetCheckResult(
        passed=age <= max_age,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            key: last.isoformat(),
            "age_hours": round(age.total_seconds() / 3600, 2),
            "max_age_hours": max_hours,
        },
    )


def freshness_check(
    *,
    asset: dg.AssetKey | str | dg.AssetsDefinition,
    name: str,
    table: str,
    column: str,
    max_age: timedelta,
    description: str,
    queries: Sequence[str] = (),
) -> dg.AssetChecksDefinition:
    """An asset check that passes when the newest `table.column` is at most `max_age` old.

    `queries` (each returning one timestamptz) are tried in order until one gives a value,
    e.g. an index-bounded recent query before the full scan; default
    ``select max(column) from table``.
    """
    sqls = list(queries) or [f"select max({column}) from {table}"]

    @dg.asset_check(asset=asset, name=name, description=description)
    def _freshness(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        last = None
        with warehouse.connect() as conn:
            for sql in sqls:
                last = conn.execute(sql).fetchone()[0]
                if last is not None:
                    break
        return freshness_result(table, column, last, max_age)

    return _freshness


__all__ = ["freshness_check", "freshness_result"]
