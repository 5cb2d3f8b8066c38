"""Asset checks that look at the ads tables as a whole: freshness of `ad_performance` and
of the raw ad object tables."""

from datetime import UTC, datetime, timedelta

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from everreach.ads import checks
from everreach_pipelines.defs.ads.assets import AD_PERFORMANCE
from everreach_pipelines.freshness import freshness_check
from everreach_pipelines.resources.warehouse import WarehouseResource

#: A daily sync plus slack for a late or retried run.
MAX_AGE = timedelta(hours=30)


@asset_check(
    asset=AD_PERFORMANCE,
    name="fresh_within_30_hours",
    description="ad_performance was written by a sync in the last 30 hours.",
)
def ad_performance_freshness(warehouse: WarehouseResource) -> AssetCheckResult:
    """Warn when the daily sync has not written `ad_performance` for more than 30 hours."""
    with warehouse.connect() as conn:
        last = checks.last_fetched_at(conn)
    if last is None:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description="ad_performance is empty",
            metadata={"last_fetched_at": "never"},
        )
    age = datetime.now(UTC) - last
    return AssetCheckResult(
        passed=age <= MAX_AGE,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "last_fetched_at": last.isoformat(),
            "age_hours": round(age.total_seconds() / 3600, 2),
            "max_age_hours": MAX_AGE.total_seconds() / 3600,
        },
    )


#: The raw ad object tables: every daily sync re-lists all objects and stamps `synced_at`.
ad_object_freshness = [
    freshness_check(
        asset=table,
        name="fresh_within_30_hours",
        table=table,
        column="synced_at",
        max_age=MAX_AGE,
        description=f"The daily ads sync rewrote {table} in the last 30 hours "
        f"(newest {table}.synced_at).",
    )
    for table in ("meta_ad_campaign", "meta_ad_set", "meta_ad")
]


#: The breakdown tables and the creatives: every daily sync rewrites its window (stamping
#: `fetched_at`) or every creative (stamping `synced_at`).
breakdown_freshness = [
    freshness_check(
        asset=table,
        name="fresh_within_30_hours",
        table=table,
        column=column,
        max_age=MAX_AGE,
        description=f"The daily ads sync wrote {table} in the last 30 hours "
        f"(newest {table}.{column}).",
    )
    for table, column in (
        ("ad_insights_age_gender", "fetched_at"),
        ("ad_insights_country", "fetched_at"),
        ("ad_insights_region", "fetched_at"),
        ("ad_insights_placement", "fetched_at"),
        ("ad_insights_actions", "fetched_at"),
        ("meta_ad_creative", "synced_at"),
    )
]
