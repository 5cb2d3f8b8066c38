"""Asset checks that look at the ads tables as a whole: freshness of `ad_performance` and
of the raw ad object tables."""

from datetime import timedelta

from everreach_pipelines.defs.ads.assets import AD_PERFORMANCE
from everreach_pipelines.freshness import freshness_check

#: A daily sync plus slack for a late or retried run.
MAX_AGE = timedelta(hours=30)


ad_performance_freshness = freshness_check(
    asset=AD_PERFORMANCE,
    name="fresh_within_30_hours",
    table="ad_performance",
    column="fetched_at",
    max_age=MAX_AGE,
    description="ad_performance was written by a sync in the last 30 hours.",
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
