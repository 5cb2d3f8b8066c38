"""How dbt nodes become Dagster assets: raw sources keep the raw assets' keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

GROUP_NAME = "marts"
OWNERS = ["team:data"]


class EverReachDbtTranslator(DagsterDbtTranslator):
    """Maps dbt sources to the keys of the assets that load them and groups models as `marts`.

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
        """Every dbt model is in group `marts`."""
        return GROUP_NAME

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        """The data team owns the dbt models."""
        return OWNERS
