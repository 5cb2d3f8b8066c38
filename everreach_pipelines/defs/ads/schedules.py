"""The daily ads sync: objects first, then yesterday's insights partition (+ lookback)."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from everreach_pipelines.defs.ads.partitions import ADS_SETTINGS

ads_daily_job = define_asset_job(
    "ads_daily_sync",
    # The whole ads group: with the reports loaded, the breakdowns and creatives too.
    selection=AssetSelection.groups("ads"),
    description="Ad objects, then ad_performance (and, where loaded, the breakdown insights "
    "and creatives) for one day plus the lookback window.",
)


@schedule(
    cron_schedule=ADS_SETTINGS.schedule,
    job=ads_daily_job,
    execution_timezone="UTC",
    name="ads_daily_schedule",
)
def ads_daily_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    """Sync the last complete day (EVERREACH_ADS_SCHEDULE, default 04:00 UTC); the run's
    lookback re-reads the days before it."""
    tick = context.scheduled_execution_time or datetime.now(UTC)
    day = tick.astimezone(UTC).date() - timedelta(days=1)
    if day < ADS_SETTINGS.start_date:
        return SkipReason(f"{day} is before EVERREACH_ADS_START_DATE {ADS_SETTINGS.start_date}")
    key = day.isoformat()
    return RunRequest(run_key=key, partition_key=key)
