"""Meta ads domain: ad objects, the `campaign` link, and daily `ad_performance` (`defs`);
breakdown insights and ad creatives, the reports analysts compare with Ads Manager
(`reports_defs`). Both are group `ads` and run in the daily job `ads_daily_sync`."""

from __future__ import annotations

from dagster import Definitions

from everreach_pipelines.defs.ads.assets import ad_objects, ad_performance
from everreach_pipelines.defs.ads.breakdowns import breakdown_assets
from everreach_pipelines.defs.ads.checks import (
    ad_object_freshness,
    ad_performance_freshness,
    breakdown_freshness,
)
from everreach_pipelines.defs.ads.creatives import ad_creatives
from everreach_pipelines.defs.ads.schedules import ads_daily_job, ads_daily_schedule

defs = Definitions(
    assets=[ad_objects, ad_performance],
    asset_checks=[ad_performance_freshness, *ad_object_freshness],
    jobs=[ads_daily_job],
    schedules=[ads_daily_schedule],
)

#: Kept apart from `defs` so the core sync stands on its own (the reports only add to it).
reports_defs = Definitions(
    assets=[ad_creatives, *breakdown_assets],
    asset_checks=[*breakdown_freshness],
)

__all__ = ["defs", "reports_defs"]
