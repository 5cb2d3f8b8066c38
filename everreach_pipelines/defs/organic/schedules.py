"""The daily organic sync: yesterday's partition of posts, snapshots and account insights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from everreach_pipelines.defs.organic.assets import organic_posts, social_account_insights
from everreach_pipelines.defs.organic.partitions import ORGANIC_SETTINGS

organic_daily_job = define_asset_job(
    "organic_daily_sync",
    selection=AssetSelection.assets(organic_posts, social_account_insights),
    description="Posts + lifetime insight snapshots and account daily insights for one day.",
)


@schedule(
    cron_schedule=ORGANIC_SETTINGS.schedule,
    job=organic_daily_job,
    execution_timezone="UTC",
    name="organic_daily_schedule",
)
def organic_daily_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    """Sync the last complete day (EVERREACH_ORGANIC_SCHEDULE, default 03:30 UTC).

    Stories live 24 h: a daily run shortly after midnight still reaches the stories of the
    previous day.
    """
    # The last complete UTC day before the tick (the tick time is the setting's cron).
    when = context.scheduled_execution_time or datetime.now(UTC)
    key = (when.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=key, partition_key=key)
