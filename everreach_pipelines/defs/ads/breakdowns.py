"""Breakdown insights assets: one daily-partitioned asset per breakdown family, beside
`ad_performance` (same partitions, lookback window, atomic replace and Graph client)."""

from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from psycopg import sql

from everreach.ads.breakdowns import (
    ALL_FAMILIES,
    Family,
    mismatches_with_ad_performance,
    sync_family,
)
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import configured_accounts, plan_window
from everreach.meta import GraphConfigurationError
from everreach.progress import Progress
from everreach.settings import SettingError
from everreach_pipelines.defs.ads.assets import (
    AD_PERFORMANCE,
    ADS_POOL,
    ADS_RETRY_POLICY,
    GROUP,
    KINDS,
    OWNERS,
    _api_delta,
    _config_failure,
)
from everreach_pipelines.defs.ads.partitions import ads_daily_partitions
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

CHECK_ADDS_UP = "adds_up_to_ad_performance"


def _preview(conn: Any, family: Family, since: date, until: date) -> str:
    """Markdown table of the window's top breakdown values by spend (all ads summed; reach
    is left out: it does not add up across ads)."""
    if family.action_breakdowns:
        dims = [sql.Identifier(c) for c in family.action_breakdowns]
        measures = sql.SQL("sum(value), sum(coalesce(money, 0))")
        header = [*family.action_breakdowns, "actions", "value"]
    else:
        dims = [sql.Identifier(c) for c in family.breakdowns]
        measures = sql.SQL("sum(spend), sum(impressions)")
        header = [*family.breakdowns, "spend", "impressions"]
    rows = conn.execute(
        sql.SQL(
            "select {dims}, {measures} from {table} where date between %s and %s "
            "group by {dims} order by {n} desc limit 10"
        ).format(
            dims=sql.SQL(", ").join(dims),
            measures=measures,
            table=sql.Identifier(family.table),
            n=sql.Literal(len(dims) + 1),
        ),
        (since, until),
    ).fetchall()
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [str(v).replace("|", "/") if v != "" else "–" for v in row[: len(dims)]]
        cells += [f"{row[-2]:,.2f}", f"{row[-1]:,.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def breakdown_asset(family: Family) -> AssetsDefinition:
    """The daily-partitioned asset that keeps `family.table` in step with Meta."""
    key = AssetKey(family.table)
    what = (
        "conversions (the configured action types and windows)"
        if family.action_breakdowns
        else "spend, impressions and clicks"
    )

    @asset(
        key=key,
        deps=["meta_ad", AD_PERFORMANCE],
        group_name=GROUP,
        owners=OWNERS,
        kinds=KINDS,
        partitions_def=ads_daily_partitions,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=31),
        retry_policy=ADS_RETRY_POLICY,
        pool=ADS_POOL,
        description=f"{family.description} Ad level, every ad status, the ad account's "
        "local dates; each run re-reads its partitions plus the lookback window (Meta revises "
        "28 days) and replaces those days atomically.",
        check_specs=[
            AssetCheckSpec(
                CHECK_ADDS_UP,
                asset=key,
                description=f"Per ad and day, the rows' {what} add up to the ad-level "
                "ad_performance row (for the account-days both tables hold).",
            )
        ],
    )
    def _breakdown(
        context: AssetExecutionContext, warehouse: WarehouseResource, meta: MetaGraphResource
    ) -> MaterializeResult:
        settings = AdsSettings.from_env()
        window = context.partition_time_window
        first = window.start.date()
        last = window.end.date() - timedelta(days=1)
        since, until = plan_window(first, last, settings.lookback_days)
        since = max(since, min(first, settings.start_date))
        client = meta.get_client()
        before = client.metrics.as_dict()
        with warehouse.connect() as conn:
            try:
                accounts = configured_accounts(conn, settings)
                progress = Progress(
                    f"{family.table} {first}..{last}",
                    total=len(accounts),
                    unit="accounts",
                    sink=context.log.info,
                )

                def step(account_id: str, rows: int | None) -> None:
                    note = "skipped (after its today)" if rows is None else f"{rows:,} rows"
                    progress.advance(rows=rows or 0, note=f"act_{account_id}: {note}")

                result = sync_family(
                    client,
                    conn,
                    family,
                    accounts,
                    since,
                    until,
                    settings,
                    log=context.log.debug,
                    on_step=step,
                    parallel_accounts=meta.parallel_accounts,
                )
                progress.finish(f"{result.rows:,} rows loaded")
            except (GraphConfigurationError, SettingError) as exc:
                raise _config_failure(exc) from exc
            mismatches = mismatches_with_ad_performance(conn, family, since, until)
            preview = _preview(conn, family, since, until)
        api = _api_delta(before, client.metrics.as_dict())
        load = result.load
        assert load is not None
        money = "conversion_value_by_currency" if family.action_breakdowns else "spend_by_currency"
        return MaterializeResult(
            metadata={
                "rows": result.rows,
                "rows_deleted": load.deleted,
                "accounts": len(result.accounts),
                "window": f"{since}..{until}",
                money: {
                    cur or "unknown": float(v) for cur, v in sorted(load.spend_by_currency.items())
                },
                "api_calls": int(api.get("calls", 0)),
                "async_jobs": int(api.get("async_jobs", 0)),
                "throttle_waits": int(api.get("throttle_waits", 0)),
                "preview": MetadataValue.md(preview),
            },
            check_results=[
                AssetCheckResult(
                    check_name=CHECK_ADDS_UP,
                    passed=not mismatches,
                    # Meta can revise a day between the two reads: a warning, not a failure.
                    severity=AssetCheckSeverity.WARN,
                    metadata={
                        "mismatched_ad_days": len(mismatches),
                        "examples": MetadataValue.json(
                            [
                                {
                                    "account": m.ad_account_id,
                                    "date": m.date.isoformat(),
                                    "ad": m.ad_id,
                                    "metric": m.metric,
                                    "breakdown_sum": float(m.breakdown),
                                    "ad_performance": float(m.unbroken),
                                }
                                for m in mismatches[:10]
                            ]
                        ),
                    },
                )
            ],
        )

    return _breakdown


#: One asset per family: ad_insights_age_gender, _country, _region, _placement, _actions.
breakdown_assets: list[AssetsDefinition] = [breakdown_asset(f) for f in ALL_FAMILIES]

__all__ = ["CHECK_ADDS_UP", "breakdown_asset", "breakdown_assets"]
