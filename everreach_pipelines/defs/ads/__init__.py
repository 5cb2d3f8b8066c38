"""Meta ads domain: ad objects, the `campaign` link, and daily `ad_performance`."""

from __future__ import annotations

from dagster import Definitions

from everreach_pipelines.defs.ads.assets import ad_objects, ad_performance
from everreach_pipelines.defs.ads.checks import ad_object_freshness, ad_performance_freshness
from everreach_pipelines.defs.ads.schedules import ads_daily_job, ads_daily_schedule

defs = Definitions(
    assets=[ad_objects, ad_performance],
    asset_checks=[ad_performance_freshness, *ad_object_freshness],
    jobs=[ads_daily_job],
    schedules=[ads_daily_schedule],
)

__all__ = ["defs"]
