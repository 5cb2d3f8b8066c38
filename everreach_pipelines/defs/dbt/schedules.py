"""When the marts refresh: every morning, after the daily syncs have loaded yesterday."""

from __future__ import annotations

from dagster import AssetSelection, build_schedule_from_partitioned_job, define_asset_job

from everreach_pipelines.defs.dbt.assets import marts_dbt_models, marts_incremental_dbt_models

marts_daily_job = define_asset_job(
    name="marts_daily_job",
    selection=AssetSelection.assets(marts_incremental_dbt_models, marts_dbt_models),
    description="dbt build of every model: incremental ones for the day's partition window.",
)

# The ads / organic / capi syncs run in the early morning (UTC); the marts follow at 06:30.
marts_daily_schedule = build_schedule_from_partitioned_job(
    marts_daily_job, hour_of_day=6, minute_of_hour=30, name="marts_daily_schedule"
)
