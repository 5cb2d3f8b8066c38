"""`everreach demo` stage: materialize the ads assets for the demo's date range."""

from __future__ import annotations

from typing import Any

from dagster import materialize

from everreach.ads.breakdowns import ALL_FAMILIES
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import configured_accounts
from everreach.warehouse.database import connect
from everreach_pipelines.defs.ads.assets import ad_objects, ad_performance
from everreach_pipelines.defs.ads.breakdowns import CHECK_ADDS_UP, breakdown_assets
from everreach_pipelines.defs.ads.creatives import ad_creatives
from everreach_pipelines.defs.ads.partitions import ads_daily_partitions
from everreach_pipelines.demo.instance import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    demo_instance,
    partition_range,
)
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource


def discover_accounts(database_url: str, meta: MetaGraphResource) -> list[str]:
    """When no ad account is configured, add the token's own (`GET me/adaccounts`) to
    `meta_platform_config`, so a fresh demo has something to sync. Returns the ids added."""
    settings = AdsSettings.from_env()
    with connect(database_url) as conn:
        if configured_accounts(conn, settings):
            return []
        found = list(
            meta.get_client().paginate(
                "me/adaccounts", {"fields": "account_id,name,currency,timezone_name", "limit": 100}
            )
        )
        for acct in found:
            conn.execute(
                "insert into meta_platform_config (platform, external_id, name, currency, "
                "time_zone) values ('ad_account', %s, %s, %s, %s) "
                "on conflict (platform, external_id) do nothing",
                (
                    str(acct["account_id"]),
                    acct.get("name"),
                    acct.get("currency"),
                    acct.get("timezone_name"),
                ),
            )
        conn.commit()
    return [str(a["account_id"]) for a in found]


def run_demo(ctx: Any) -> list[str]:
    """Materialize ad objects, `ad_performance`, the creatives and every breakdown family
    for ctx.start_date..ctx.end_date; one summary line per family."""
    kwargs = {
        k: v
        for k, v in ctx.graph_client_kwargs.items()
        if k in MetaGraphResource.model_fields and v is not None
    }
    if ctx.sandbox_base_url:
        # The sandbox completes report runs in milliseconds: do not poll every 2 s.
        kwargs.setdefault("poll_interval", 0.05)
    meta = MetaGraphResource(**kwargs)
    added = discover_accounts(ctx.database_url, meta)
    if added:
        ctx.log(
            f"no ad account configured: added {len(added)} from me/adaccounts "
            "to meta_platform_config"
        )
    first, last = partition_range(ads_daily_partitions, ctx.start_date, ctx.end_date)
    ctx.log(
        f"materializing ad objects, ad_performance, creatives and breakdowns for {first}..{last}"
    )
    result = materialize(
        [ad_objects, ad_performance, ad_creatives, *breakdown_assets],
        resources={"warehouse": WarehouseResource(database_url=ctx.database_url), "meta": meta},
        instance=demo_instance(ctx),
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
    )
    lines = []
    # A range run records one materialization per partition, all with the run's metadata.
    for mat in result.asset_materializations_for_node("ad_performance")[:1]:
        md = mat.metadata
        spend = md["spend_by_currency"].value
        lines.append(
            f"ad_performance: {md['rows'].value:,} rows over {md['window'].value}, "
            f"{md['accounts'].value} account(s), {md['api_calls'].value} API calls"
        )
        lines.append(
            "spend: "
            + (", ".join(f"{v:,.2f} {k}" for k, v in spend.items()) or "none (no delivery)")
        )
    lines.extend(_family_lines(result))
    for mat in result.asset_materializations_for_node("meta_ad_creative")[:1]:
        md = mat.metadata
        lines.append(
            f"meta_ad_creative: {md['rows_written'].value} creatives "
            f"({md['with_utm_source'].value} with a utm_source), "
            f"by status {md['creatives_by_status'].value}"
        )
    checks = [(c.check_name, c.passed) for c in result.get_asset_check_evaluations()]
    failed = [name for name, passed in checks if not passed]
    lines.append(
        f"checks: {len(checks) - len(failed)}/{len(checks)} passed"
        + (f" (failed: {', '.join(failed)})" if failed else "")
    )
    return lines


def _family_lines(result: Any) -> list[str]:
    """One line per breakdown family: rows, money by currency, and whether it adds up."""
    adds_up = {
        c.asset_key.to_user_string(): c.passed
        for c in result.get_asset_check_evaluations()
        if c.check_name == CHECK_ADDS_UP
    }
    lines = []
    for family in ALL_FAMILIES:
        for mat in result.asset_materializations_for_node(family.table)[:1]:
            md = mat.metadata
            money_key = (
                "conversion_value_by_currency" if family.action_breakdowns else "spend_by_currency"
            )
            money = ", ".join(f"{v:,.2f} {k}" for k, v in md[money_key].value.items()) or "none"
            what = "conversion value" if family.action_breakdowns else "spend"
            check = "adds up to ad_performance" if adds_up.get(family.table) else "DOES NOT add up"
            lines.append(f"{family.table}: {md['rows'].value:,} rows, {what} {money}; {check}")
    return lines


__all__ = ["discover_accounts", "run_demo"]
