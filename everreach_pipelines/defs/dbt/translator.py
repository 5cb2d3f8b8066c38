"""How dbt nodes become Dagster assets: raw sources keep the raw assets' keys, models are
grouped by the layer (and mart area) their folder names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

OWNERS = ["team:data"]
#: Folders under models/ that are one group each; marts/<area>/ is group `marts_<area>`.
LAYERS = ("staging", "intermediate")


def group_of(fqn: Sequence[str]) -> str:
    """`[project, "staging", ...]` → `staging`; `[project, "marts", "ads", model]` →
    `marts_ads`. The global lineage then reads raw (per domain) → staging → intermediate →
    marts (per area), like the data flows."""
    folders = list(fqn[1:-1])
    if not folders:
        raise ValueError(f"dbt node {'.'.join(fqn)} is not in a layer folder under models/")
    if folders[0] == "marts" and len(folders) > 1:
        return f"marts_{folders[1]}"
    return folders[0]


class EverReachDbtTranslator(DagsterDbtTranslator):
    """Maps dbt sources to the keys of the assets that load them and groups models by layer.

    A source table `public.<name>` is `AssetKey([<name>])`, the key the ads / organic / capi /
    messaging assets materialize (e.g. `ad_performance`, `user_event`); `auth.users` is
    `AssetKey(["auth", "users"])`. Where no asset produces a key, Dagster shows the source as
    an external asset. Models are keyed `[<schema>, <model>]` (e.g. `marts/touchpoints`).
    """

    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        """Source → raw table key; model → [schema, name]."""
        if dbt_resource_props["resource_type"] == "source":
            schema = dbt_resource_props["schema"]
            name = dbt_resource_props["name"]
            return AssetKey([name]) if schema == "public" else AssetKey([schema, name])
        if dbt_resource_props["resource_type"] in {"model", "snapshot", "seed"}:
            schema = dbt_resource_props["config"].get("schema") or dbt_resource_props["schema"]
            return AssetKey([schema, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """The model's layer folder (`staging`, `intermediate`) or mart area (`marts_ads`…)."""
        return group_of(dbt_resource_props["fqn"])

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        """The data team owns the dbt models."""
        return OWNERS
