"""Organic content domain: IG media / Page posts, daily insight snapshots, account insights."""

from __future__ import annotations

from dagster import Definitions

from everreach_pipelines.defs.organic.assets import organic_posts, social_account_insights
from everreach_pipelines.defs.organic.checks import FRESHNESS_CHECKS
from everreach_pipelines.defs.organic.schedules import organic_daily_job, organic_daily_schedule

defs = Definitions(
    assets=[organic_posts, social_account_insights],
    asset_checks=FRESHNESS_CHECKS,
    jobs=[organic_daily_job],
    schedules=[organic_daily_schedule],
)

__all__ = ["defs"]
