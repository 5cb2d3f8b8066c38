"""Organic assets: Instagram media / Page posts with daily insight snapshots, and account
daily insights (IG business accounts and Facebook Pages)."""

# No `from __future__ import annotations`: Dagster reads the Config annotation at runtime.

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Backoff,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    multi_asset,
)

from everreach.organic import checks, sync
from everreach.organic.fetch import OrganicGraph
from everreach.organic.settings import OrganicSettings
from everreach.progress import Progress
from everreach.settings import SettingError
from everreach_pipelines.charts import markdown_table
from everreach_pipelines.defs.organic.charts import (
    CHART_FOLLOWER_TREND,
    FOLLOWER_CHART_DAYS,
    SPARK_FOLLOWER_TREND,
    follower_chart,
    follower_sparkline,
)
from everreach_pipelines.defs.organic.partitions import (
    OrganicSyncConfig,
    organic_daily_partitions,
)
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

GROUP = "organic"
OWNERS = ["team:social"]
KINDS = {"meta", "postgres", "python"}

#: Transient trouble the client could not ride out: retry the step later with growing,
#: jittered delays. Configuration errors (token, metric) raise Failure without retries.
ORGANIC_RETRY_POLICY = RetryPolicy(
    max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)
#: Dagster concurrency pool of the steps that call the Page / Instagram APIs: each step
#: already reads its accounts in parallel (one worker per account), and the pool's limit
#: (1 in deploy/dagster.yaml) keeps a backfill's runs from multiplying the calls per account.
ORGANIC_POOL = "meta_organic"
#: A month of partitions per run: a backfill is a few runs, not hundreds.
ORGANIC_BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=31)

SOCIAL_MEDIA_POST = AssetKey("social_media_post")
SOCIAL_POST_INSIGHTS = AssetKey("social_post_insights")
SOCIAL_ACCOUNT_INSIGHTS = AssetKey("social_account_insights")
CHECK_NO_DUPLICATE_SNAPSHOTS = "no_duplicate_grain_keys"
CHECK_SNAPSHOTS_NON_NEGATIVE = "counters_non_negative"
CHECK_COUNTERS_NOT_DECREASING = "lifetime_counters_not_decreasing"
CHECK_NO_DUPLICATE_ACCOUNT_DAYS = "no_duplicate_grain_keys"
CHECK_ACCOUNT_NON_NEGATIVE = "values_non_negative"
CHECK_FOLLOWERS_PRESENT = "follower_count_present_each_account_day"


def _days(context: AssetExecutionContext) -> list[date]:
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


def _progress(context: AssetExecutionContext, what: str, days: list[date]) -> Progress:
    """Platform × day steps of a run, reported in the run's logs (every few seconds)."""
    return Progress(
        f"{what} {days[0]}..{days[-1]} ({len(days)} partition(s))",
        total=len(sync.PLATFORMS) * len(days),
        unit="platform×day",
        sink=context.log.info,
    )


def _usage_metadata(graph: OrganicGraph, account_ids: list[str], parallel: int) -> dict:
    """How the run stood with Meta's limits: accounts read at once, and the highest usage
    Meta reported per Page / IG account (they are metered one by one)."""
    usage = graph.client.throttle.usage()
    return {
        "parallel_accounts": parallel,
        "throttle_errors": sum(usage[a].throttled for a in account_ids if a in usage),
        "peak_usage_pct_by_account": MetadataValue.json(
            {a: round(usage[a].peak_pct, 1) for a in sorted(set(account_ids)) if a in usage}
        ),
    }


def _failure(errors: list[str]) -> Failure:
    # A person must fix these (token, metric list, setting): retrying cannot help.
    return Failure(description="\n".join(errors), allow_retries=False)


def _raise_on_errors(context: AssetExecutionContext, report: sync.RangeReport) -> None:
    """Fail the run naming every platform's configuration error (each also logged)."""
    for platform, message in report.errors:
        context.log.error(f"{platform}: {message}")
    if report.errors:
        raise _failure([message for _, message in report.errors])


def _sync_range(
    context: AssetExecutionContext,
    conn: Any,
    what: str,
    days: list[date],
    sync_day: sync.DaySync,
) -> sync.RangeReport:
    """`sync_day` over both platforms' accounts and `days`, its progress in the run's logs;
    fails the run naming every configuration error."""
    progress = _progress(context, what, days)
    report = sync.sync_range(
        conn,
        days,
        sync_day,
        on_day=lambda platform, day, rows: progress.advance(rows=rows, note=f"{platform} {day}"),
    )
    progress.finish()
    _raise_on_errors(context, report)
    return report


def _md_table(rows: list[dict]) -> str:
    return markdown_table(rows)


@multi_asset(
    name="organic_posts",
    specs=[
        AssetSpec(
            SOCIAL_MEDIA_POST,
            group_name=GROUP,
            owners=OWNERS,
            kinds=KINDS,
            partitions_def=organic_daily_partitions,
            description="Instagram media (images, carousels, videos, reels, stories) "
            "and Facebook Page posts of every configured account: type, caption, "
            "permalink, posting time, and why Meta gives no insights when it refuses.",
        ),
        AssetSpec(
            SOCIAL_POST_INSIGHTS,
            group_name=GROUP,
            owners=OWNERS,
            kinds=KINDS,
            deps=[SOCIAL_MEDIA_POST],
            partitions_def=organic_daily_partitions,
            description="Lifetime post counters (views, reach, likes, comments, "
            "shares, saved, interactions, reel watch time, story navigation; Page "
            "post media views, reactions, clicks), one snapshot per post per day.",
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            CHECK_NO_DUPLICATE_SNAPSHOTS,
            asset=SOCIAL_POST_INSIGHTS,
            description="One row per platform × post × snapshot date × metric.",
        ),
        AssetCheckSpec(
            CHECK_SNAPSHOTS_NON_NEGATIVE,
            asset=SOCIAL_POST_INSIGHTS,
            description="No negative counter.",
        ),
        AssetCheckSpec(
            CHECK_COUNTERS_NOT_DECREASING,
            asset=SOCIAL_POST_INSIGHTS,
            description="A lifetime counter never drops between snapshots "
            "(warning: Meta occasionally corrects counts).",
        ),
    ],
    partitions_def=organic_daily_partitions,
    backfill_policy=ORGANIC_BACKFILL_POLICY,
    retry_policy=ORGANIC_RETRY_POLICY,
    can_subset=False,
    pool=ORGANIC_POOL,
)
def organic_posts(
    context: AssetExecutionContext,
    config: OrganicSyncConfig,
    warehouse: WarehouseResource,
    meta: MetaGraphResource,
) -> Iterator[MaterializeResult]:
    """List IG media/stories and Page posts, and snapshot each recent post's lifetime
    insights every day (older posts every EVERREACH_ORGANIC_OLD_POST_REFRESH_DAYS days).
    Media Meta refuses one by one (posted before the business conversion, not enough
    viewers, expired stories) are skipped and counted; a metric Meta rejects fails the run
    naming it."""
    settings = _settings()
    as_of = config.observed_at()
    graph = OrganicGraph(meta.get_client())
    days = _days(context)
    with warehouse.connect(autocommit=True) as conn:
        report = _sync_range(
            context,
            conn,
            "organic posts",
            days,
            lambda platform, accounts, day: sync.sync_posts(
                conn,
                graph,
                platform,
                accounts,
                day,
                as_of,
                recent_days=settings.recent_days,
                old_post_refresh_days=settings.old_post_refresh_days,
                parallel_accounts=meta.parallel_accounts,
            ),
        )
        first, last = days[0], days[-1]
        duplicates = checks.duplicate_snapshot_keys(conn, first, last)
        negative = checks.negative_snapshot_values(conn, first, last)
        decreasing = checks.decreasing_counters(conn, first, last)
    stats = graph.stats
    context.log.info(
        f"organic posts {first}..{last}: {report.accounts} accounts, {report.posts} posts, "
        f"{report.snapshot_posts} snapshotted, {report.rows} rows, skipped {dict(report.skipped)}"
    )
    common = {
        "accounts": report.accounts,
        "window": f"{first}..{last}",
        "observed_at": as_of.isoformat(timespec="seconds"),
    }
    yield MaterializeResult(asset_key=SOCIAL_MEDIA_POST, metadata={**common, "rows": report.posts})
    skipped = report.skipped
    fetched = max(report.snapshot_posts + sum(skipped.values()), 1)
    yield MaterializeResult(
        asset_key=SOCIAL_POST_INSIGHTS,
        metadata={
            **common,
            "rows": report.rows,
            "posts_snapshotted": report.snapshot_posts,
            "skipped": sum(skipped.values()),
            "skipped_by_reason": dict(skipped),
            "posts_by_kind": dict(report.by_kind),
            "api_calls": stats.graph_calls,
            "http_requests": stats.http_requests,
            **_usage_metadata(graph, report.account_ids, meta.parallel_accounts),
            "api_calls_per_post": round(stats.graph_calls / fetched, 3),
            "notes": MetadataValue.md("\n".join(f"- {n}" for n in report.notes) or "(none)"),
            "preview": MetadataValue.md(_md_table(report.preview[:10])),
        },
        check_results=[
            AssetCheckResult(
                check_name=CHECK_NO_DUPLICATE_SNAPSHOTS,
                asset_key=SOCIAL_POST_INSIGHTS,
                passed=duplicates == 0,
                metadata={"duplicate_keys": duplicates},
            ),
            AssetCheckResult(
                check_name=CHECK_SNAPSHOTS_NON_NEGATIVE,
                asset_key=SOCIAL_POST_INSIGHTS,
                passed=negative == 0,
                metadata={"negative_rows": negative},
            ),
            AssetCheckResult(
                check_name=CHECK_COUNTERS_NOT_DECREASING,
                asset_key=SOCIAL_POST_INSIGHTS,
                passed=decreasing == 0,
                severity=AssetCheckSeverity.WARN,
                metadata={"decreasing_snapshots": decreasing},
            ),
        ],
    )


@asset(
    key=SOCIAL_ACCOUNT_INSIGHTS,
    group_name=GROUP,
    owners=OWNERS,
    kinds=KINDS,
    partitions_def=organic_daily_partitions,
    backfill_policy=ORGANIC_BACKFILL_POLICY,
    retry_policy=ORGANIC_RETRY_POLICY,
    pool=ORGANIC_POOL,
    check_specs=[
        AssetCheckSpec(
            CHECK_NO_DUPLICATE_ACCOUNT_DAYS,
            asset=SOCIAL_ACCOUNT_INSIGHTS,
            description="One row per platform × account × date × metric × period.",
        ),
        AssetCheckSpec(
            CHECK_ACCOUNT_NON_NEGATIVE,
            asset=SOCIAL_ACCOUNT_INSIGHTS,
            description="No negative daily value.",
        ),
        AssetCheckSpec(
            CHECK_FOLLOWERS_PRESENT,
            asset=SOCIAL_ACCOUNT_INSIGHTS,
            description="Every account-day has its follower metric (IG "
            "follower_count within Meta's 30 days; Page page_follows).",
        ),
    ],
)
def social_account_insights(
    context: AssetExecutionContext,
    config: OrganicSyncConfig,
    warehouse: WarehouseResource,
    meta: MetaGraphResource,
) -> MaterializeResult:
    """Daily audience of each Instagram business account (reach, views, follower_count,
    profile views, website clicks, accounts engaged, interactions…) and each Facebook Page
    (media views, follows/unfollows, post engagements, Page views), post-2025 metric names.
    Each run replaces its days for the configured accounts."""
    as_of = config.observed_at()
    graph = OrganicGraph(meta.get_client())
    days = _days(context)
    with warehouse.connect(autocommit=True) as conn:
        report = _sync_range(
            context,
            conn,
            "social_account_insights",
            days,
            lambda platform, accounts, day: sync.sync_account_insights(
                conn,
                graph,
                platform,
                accounts,
                day,
                as_of,
                parallel_accounts=meta.parallel_accounts,
            ),
        )
        first, last = days[0], days[-1]
        duplicates = checks.duplicate_account_keys(conn, first, last)
        negative = checks.negative_account_values(conn, first, last)
        missing = checks.account_days_without_followers(conn, first, last)
        follower_rows = checks.follower_series(conn, last, FOLLOWER_CHART_DAYS)
    chart = follower_chart(follower_rows, last)
    spark = follower_sparkline(follower_rows, last)
    stats = graph.stats
    return MaterializeResult(
        metadata={
            "rows": report.rows,
            "accounts": report.accounts,
            "window": f"{first}..{last}",
            "skipped": sum(report.skipped.values()),
            "skipped_by_reason": dict(report.skipped),
            "api_calls": stats.graph_calls,
            "http_requests": stats.http_requests,
            **_usage_metadata(graph, report.account_ids, meta.parallel_accounts),
            **({SPARK_FOLLOWER_TREND: spark} if spark is not None else {}),
            **({CHART_FOLLOWER_TREND: chart} if chart is not None else {}),
            "preview": MetadataValue.md(_md_table(report.preview[:10])),
        },
        check_results=[
            AssetCheckResult(
                check_name=CHECK_NO_DUPLICATE_ACCOUNT_DAYS,
                passed=duplicates == 0,
                metadata={"duplicate_keys": duplicates},
            ),
            AssetCheckResult(
                check_name=CHECK_ACCOUNT_NON_NEGATIVE,
                passed=negative == 0,
                metadata={"negative_rows": negative},
            ),
            AssetCheckResult(
                check_name=CHECK_FOLLOWERS_PRESENT,
                passed=not missing,
                metadata={
                    "missing_account_days": len(missing),
                    "examples": MetadataValue.json(
                        [{"platform": p, "account": a, "date": str(d)} for p, a, d in missing[:10]]
                    ),
                },
            ),
        ],
    )


def _settings() -> OrganicSettings:
    try:
        return OrganicSettings.from_env()
    except SettingError as exc:
        raise _failure([str(exc)]) from exc


__all__: list[Any] = ["organic_posts", "social_account_insights"]
