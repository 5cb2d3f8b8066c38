"""Tables written outside Dagster (by the app, the webhook receiver, database functions),
declared as external assets by the domain that owns them.

Nothing in Dagster materializes these keys; declaring them puts the app → raw → marts lineage
in the UI, in the owning domain's group. The dbt sources that read them resolve to the same
keys (`public.<name>` → `AssetKey([name])`, other schemas → `AssetKey([schema, name])`).
If a domain starts materializing one of these tables, it drops the declaration here (two
definitions of one key cannot be merged).
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec


def table_key(table: str) -> AssetKey:
    """`user_event` → `AssetKey(["user_event"])`; `auth.users` → `AssetKey(["auth", "users"])`."""
    schema, _, name = table.rpartition(".")
    return AssetKey([name]) if schema in {"", "public"} else AssetKey([schema, name])


def written_elsewhere(
    table: str, *, written_by: str, description: str, group: str, owners: list[str]
) -> AssetSpec:
    """The external asset of `table` (e.g. `auth.users`), in `group`, owned by `owners`."""
    qualified = table if "." in table else f"public.{table}"
    return AssetSpec(
        key=table_key(table),
        description=f"{description} Written by {written_by}, not by Dagster.",
        group_name=group,
        owners=owners,
        kinds={"postgres"},
        metadata={"table": qualified, "written_by": written_by},
    )


__all__ = ["table_key", "written_elsewhere"]
