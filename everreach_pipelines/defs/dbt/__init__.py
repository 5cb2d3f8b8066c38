"""dbt models as Dagster assets, grouped by layer (`staging`, `intermediate`, `marts_<area>`):
definitions without resources.

Needs the `warehouse` resource (`WarehouseResource`), bound by everreach_pipelines.definitions.
"""

from __future__ import annotations

import dagster as dg

from everreach_pipelines.defs.dbt.assets import marts_dbt_models, marts_incremental_dbt_models
from everreach_pipelines.defs.dbt.checks import capi_coverage_not_dropping
from everreach_pipelines.defs.dbt.schedules import marts_daily_job, marts_daily_schedule

defs = dg.Definitions(
    assets=[marts_incremental_dbt_models, marts_dbt_models],
    asset_checks=[capi_coverage_not_dropping],
    jobs=[marts_daily_job],
    schedules=[marts_daily_schedule],
)

__all__ = ["defs"]
