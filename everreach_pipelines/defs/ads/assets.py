"""Ads assets: ad objects (+ the `campaign` link) and daily `ad_performance`."""

from collections.abc import Iterator, Mapping
from datetime import timedelta

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

from everreach.ads import checks
from everreach.ads.objects import sync_ad_objects
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import (
    StepCallback,
    configured_accounts,
    plan_window,
    sync_ad_performance,
)
from everreach.ads.transform import LEVELS
from everreach.meta import GraphConfigurationError
from everreach.progress import Progress
from everreach.settings import SettingError
from everreach_pipelines.defs.ads.charts import (
    CHART_SPEND_VS_VALUE,
    SPARK_SPEND_VS_VALUE,
    spend_chart,
    spend_sparkline,
    top_campaigns_markdown,
)
from everreach_pipelines.defs.ads.partitions import ads_daily_partitions
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

GROUP = "ads"
OWNERS = ["team:data"]
KINDS = {"meta", "postgres", "python"}

#: Transient trouble the client could not ride out (Meta outage, lost connection): retry
#: the step later with growing, jittered delays. Configuration errors skip retries.
ADS_RETRY_POLICY = RetryPolicy(
    max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)

#: Dagster concurrency pool of every step that calls the Marketing API. Meta limits the
#: app and each ad account, and a step already reads its accounts in parallel (one worker
#: per account): the pool's limit (1 in deploy/dagster.yaml) is how many such steps may run
#: at once across all runs, so a backfill's runs and the daily sync queue instead of
#: multiplying the calls per account.
ADS_POOL = "meta_ads"

AD_PERFORMANCE = AssetKey("ad_performance")
CHECK_NO_DUPLICATES = "no_duplicate_grain_keys"
CHECK_SPEND_NON_NEGATIVE = "spend_non_negative"
CHECK_AD_SPEND_MATCHES_ACCOUNT = "ad_spend_matches_account_spend"


def _config_failure(exc: Exception) -> Failure:
    """A failure a person must fix (token, permission, setting): retrying cannot help."""
    return Failure(description=str(exc), allow_retries=False)


def _sync_progress(progress: Progress) -> StepCallback:
    """The sync's `on_step` callback: one step of `progress` per account × level fetched,
    all four levels at once for an account whose window is skipped."""

    def step(account_id: str, level: str | None, rows: int) -> None:
        if level is None:
            progress.advance(len(LEVELS), note=f"act_{account_id}: skipped (after its today)")
        else:
            progress.advance(rows=rows, note=f"act_{account_id} {level}: {rows:,} rows")

    return step


def _api_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    # The resource keeps one client per process, so its metrics are cumulative.
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


@multi_asset(
    name="ad_objects",
    specs=[
        AssetSpec(
            "meta_ad_campaign",
            description="Meta campaigns of every configured ad "
            "account (all statuses): name, status, objective, budgets, times.",
            owners=OWNERS,
            kinds=KINDS,
        ),
        AssetSpec(
            "meta_ad_set",
            description="Meta ad sets (all statuses) with budgets.",
            owners=OWNERS,
            kinds=KINDS,
        ),
        AssetSpec(
            "meta_ad",
            description="Meta ads (all statuses) with their parents.",
            owners=OWNERS,
            kinds=KINDS,
        ),
        AssetSpec(
            "campaign",
            deps=["meta_ad_campaign"],
            description="EverReach campaigns: every Meta campaign has a row "
            "(meta_campaign_id), kept in step with its Meta name.",
            owners=OWNERS,
            kinds={"postgres"},
        ),
    ],
    group_name=GROUP,
    retry_policy=ADS_RETRY_POLICY,
    pool=ADS_POOL,
)
def ad_objects(
    context: AssetExecutionContext, warehouse: WarehouseResource, meta: MetaGraphResource
) -> Iterator[MaterializeResult]:
    """List every campaign, ad set and ad (deleted and archived included) of every
    configured ad account into the raw tables, and upsert Meta campaigns into `campaign`."""
    client = meta.get_client()
    before = client.metrics.as_dict()
    try:
        settings = AdsSettings.from_env()
        with warehouse.connect() as conn:
            accounts = configured_accounts(conn, settings)
            result = sync_ad_objects(
                client, conn, accounts, parallel_accounts=meta.parallel_accounts
            )
    except (GraphConfigurationError, SettingError) as exc:
        raise _config_failure(exc) from exc
    api = _api_delta(before, client.metrics.as_dict())
    context.log.info(f"ad objects of {len(accounts)} account(s): {result.rows}")
    common = {"accounts": len(accounts), "api_calls": int(api.get("calls", 0))}
    yield MaterializeResult(
        asset_key="meta_ad_campaign", metadata={**common, "rows": result.rows.get("campaign", 0)}
    )
    yield MaterializeResult(
        asset_key="meta_ad_set", metadata={**common, "rows": result.rows.get("adset", 0)}
    )
    yield MaterializeResult(
        asset_key="meta_ad", metadata={**common, "rows": result.rows.get("ad", 0)}
    )
    yield MaterializeResult(
        asset_key="campaign",
        metadata={"created": result.campaigns_created, "renamed": result.campaigns_renamed},
    )


@asset(
    key=AD_PERFORMANCE,
    deps=["meta_ad_campaign", "campaign"],
    group_name=GROUP,
    owners=OWNERS,
    kinds=KINDS,
    partitions_def=ads_daily_partitions,
    # A month of partitions is one run (a long backfill is a few, not hundreds).
    backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=31),
    retry_policy=ADS_RETRY_POLICY,
    pool=ADS_POOL,
    check_specs=[
        AssetCheckSpec(
            CHECK_NO_DUPLICATES,
            asset=AD_PERFORMANCE,
            description="One row per date × account × level × entity.",
        ),
        AssetCheckSpec(
            CHECK_SPEND_NON_NEGATIVE, asset=AD_PERFORMANCE, description="No negative spend."
        ),
        AssetCheckSpec(
            CHECK_AD_SPEND_MATCHES_ACCOUNT,
            asset=AD_PERFORMANCE,
            description="Per account and day, ad-level spend adds up to the "
            "account-level spend within rounding (no ad lost, deleted ones too).",
        ),
    ],
)
def ad_performance(
    context: AssetExecutionContext, warehouse: WarehouseResource, meta: MetaGraphResource
) -> MaterializeResult:
    """Daily Meta ads insights at account, campaign, ad set and ad level for every configured
    ad account: spend, impressions, reach, frequency, clicks, link clicks, CTR/CPC/CPM as
    Meta reports them, `actions`/`action_values` as jsonb, and conversions derived from the
    configured action types and attribution windows. Each run re-reads its partitions plus
    the lookback window (Meta revises 28 days) and replaces those days atomically."""
    settings = AdsSettings.from_env()
    window = context.partition_time_window
    first = window.start.date()
    last = window.end.date() - timedelta(days=1)
    since, until = plan_window(first, last, settings.lookback_days)
    # Nothing is expected before the first partition: the lookback does not reach past it.
    since = max(since, min(first, settings.start_date))
    client = meta.get_client()
    before = client.metrics.as_dict()
    with warehouse.connect() as conn:
        try:
            accounts = configured_accounts(conn, settings)
            partitions = len(context.partition_keys)
            context.log.info(
                f"syncing {since}..{until} for {len(accounts)} ad account(s): {partitions} "
                f"partition(s) {first}..{last} plus the {settings.lookback_days}-day lookback"
            )
            progress = Progress(
                f"ad_performance {first}..{last} ({partitions} partition(s))",
                total=len(accounts) * len(LEVELS),
                unit="account×level fetches",
                sink=context.log.info,
            )
            result = sync_ad_performance(
                client,
                conn,
                accounts,
                since,
                until,
                settings,
                log=context.log.debug,
                on_step=_sync_progress(progress),
                parallel_accounts=meta.parallel_accounts,
            )
            progress.finish(f"{result.rows:,} rows loaded")
        except (GraphConfigurationError, SettingError) as exc:
            raise _config_failure(exc) from exc
        duplicates = checks.duplicate_grain_keys(conn, since, until)
        negative = checks.negative_spend_rows(conn, since, until)
        mismatches = checks.ad_vs_account_spend(conn, since, until)
        top = checks.top_campaigns(conn, since, until)
        spend_rows = checks.campaign_spend_by_day(conn, since, until)
    # Rendered after the connection is back in the pool.
    preview = top_campaigns_markdown(top)
    chart = spend_chart(spend_rows, since, until)
    spark = spend_sparkline(spend_rows, since, until)
    api = _api_delta(before, client.metrics.as_dict())
    spend = {cur or "unknown": float(v) for cur, v in sorted(result.spend_by_currency.items())}
    return MaterializeResult(
        metadata={
            "rows": result.rows,
            "rows_by_level": dict(result.load.rows_by_level),
            "rows_deleted": result.load.deleted,
            "spend_total": float(sum(result.spend_by_currency.values())),
            "spend_by_currency": spend,
            "accounts": len(result.accounts),
            "window": f"{since}..{until}",
            "api_calls": int(api.get("calls", 0)),
            "api_retries": int(api.get("retries", 0)),
            "throttle_waits": int(api.get("throttle_waits", 0)),
            "throttle_wait_seconds": round(api.get("throttle_wait_seconds", 0.0), 2),
            "async_jobs": int(api.get("async_jobs", 0)),
            "throttle_errors": int(api.get("throttled", 0)),
            "parallel_accounts": meta.parallel_accounts,
            "peak_usage_pct_by_account": MetadataValue.json(
                {f"act_{a}": round(u.peak_pct, 1) for a, u in sorted(result.usage.items())}
            ),
            "campaigns_created": result.load.campaigns_created,
            **({SPARK_SPEND_VS_VALUE: spark} if spark is not None else {}),
            **({CHART_SPEND_VS_VALUE: chart} if chart is not None else {}),
            "preview": MetadataValue.md(preview),
        },
        check_results=[
            AssetCheckResult(
                check_name=CHECK_NO_DUPLICATES,
                passed=duplicates == 0,
                metadata={"duplicate_keys": duplicates},
            ),
            AssetCheckResult(
                check_name=CHECK_SPEND_NON_NEGATIVE,
                passed=negative == 0,
                metadata={"negative_rows": negative},
            ),
            AssetCheckResult(
                check_name=CHECK_AD_SPEND_MATCHES_ACCOUNT,
                passed=not mismatches,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "mismatched_account_days": len(mismatches),
                    "examples": MetadataValue.json(
                        [
                            {
                                "account": m.ad_account_id,
                                "date": m.date.isoformat(),
                                "account_spend": float(m.account_spend),
                                "ad_spend": float(m.ad_spend),
                            }
                            for m in mismatches[:10]
                        ]
                    ),
                },
            ),
        ],
    )
