"""`everreach demo`'s dbt step: build the marts, then summarize campaign ROAS and one journey."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from dagster import materialize

from everreach.warehouse.database import connect
from everreach_pipelines.defs.dbt.assets import marts_dbt_models, marts_incremental_dbt_models
from everreach_pipelines.defs.dbt.checks import capi_coverage_not_dropping
from everreach_pipelines.defs.dbt.partitions import marts_daily_partitions
from everreach_pipelines.demo.instance import (
    QUIET_CONSOLE,
    RANGE_END_TAG,
    RANGE_START_TAG,
    demo_instance,
    range_tags,
    run_output_to,
)
from everreach_pipelines.resources.warehouse import WarehouseResource

MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay")


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def run_demo(ctx: Any) -> list[str]:
    """Materialize every dbt model through Dagster (`dbt build`: models, data tests as asset
    checks, unit tests) in the demo's Dagster instance, the incremental models rebuilt in full
    and recorded for the demo's days, in one run; return the build's line and the story the
    marts tell (`summary_lines`)."""
    tags = range_tags(marts_daily_partitions, ctx.start_date, ctx.end_date)
    ctx.log(
        "dbt build through Dagster: staging → intermediate → marts, incremental models for "
        f"{tags[RANGE_START_TAG]}..{tags[RANGE_END_TAG]} (data tests as asset checks)"
    )
    output = Path(tempfile.gettempdir()) / "everreach-demo-dbt.log"
    ctx.log(f"dbt's own output: {output}")
    try:
        with run_output_to(output):
            result = materialize(
                [marts_incremental_dbt_models, marts_dbt_models, capi_coverage_not_dropping],
                resources={"warehouse": WarehouseResource(database_url=ctx.database_url)},
                instance=demo_instance(ctx),
                tags=tags,
                # full refresh: a re-run of the demo replaces its app events (new ids), and
                # incremental models never see deleted events
                run_config={
                    **QUIET_CONSOLE,
                    "ops": {"marts_incremental_dbt_models": {"config": {"full_refresh": True}}},
                },
            )
    except Exception:
        for line in output.read_text(encoding="utf-8").splitlines()[-30:]:
            ctx.log(f"dbt | {line}")
        raise
    # a range run records one materialization per partition of each incremental model
    models = {e.asset_key for e in result.get_asset_materialization_events()}
    checks = [(c.check_name, c.passed) for c in result.get_asset_check_evaluations()]
    failed = sorted(name for name, passed in checks if not passed)
    lines = [
        f"dbt build: {len(models)} models materialized, "
        f"{len(checks) - len(failed)}/{len(checks)} checks passed"
        + (f" (failed: {', '.join(failed)})" if failed else "")
    ]

    with connect(ctx.database_url) as conn:
        lines += summary_lines(conn)
    return lines


#: One line on why Meta's figures and the first-party ones differ (the demo prints it under
#: the comparison; the marts' README explains it at length).
WHY_THEY_DIFFER = (
    "why they differ: Meta counts view-through buyers and 7-day clicks on the day of the ad; "
    "first-party attribution credits 28 days of clicks and messages on the day of the "
    "purchase, and buyers no touch explains stay unattributed"
)


def summary_lines(conn: Any) -> list[str]:
    """The demo's story from the marts: campaign ROAS (Meta-reported and attributed per
    model), Meta-reported vs attributed per currency and why they differ, the attribution
    totals, CAPI coverage, and the journey of the user with the most conversions."""
    lines: list[str] = []
    rows = conn.execute(
        "select coalesce(campaign_name, meta_campaign_id, campaign_id::text), attribution_model, "
        "spend, meta_reported_roas, attributed_roas from marts.campaign_attribution_roas "
        "order by spend desc, 1, attribution_model"
    ).fetchall()
    campaigns: dict[str, dict[str, Any]] = {}
    for name, model, spend, meta_roas, roas in rows:
        entry = campaigns.setdefault(name, {"spend": spend, "meta": meta_roas})
        entry[model] = roas
    lines.append("campaign ROAS (Meta-reported | attributed: " + " / ".join(MODELS) + ")")
    for name, entry in list(campaigns.items())[:10]:
        attributed = " / ".join(_fmt(entry.get(m)) for m in MODELS)
        lines.append(
            f"  {name[:40]:40} spend {_fmt(entry['spend'])}  "
            f"meta {_fmt(entry['meta'])} | {attributed}"
        )
    if not campaigns:
        lines.append("  (no campaign spend loaded)")
    for currency, spend, meta_value, revenue, meta_conv, attributed in conn.execute(
        "select currency, sum(spend), sum(meta_reported_conversion_value), "
        "sum(attributed_revenue), sum(meta_reported_conversions), sum(attributed_conversions) "
        "from marts.campaign_attribution_roas where attribution_model = 'linear' "
        "and currency is not null group by currency having sum(spend) > 0 order by sum(spend) desc"
    ):
        lines.append(
            f"{currency}: Meta-reported ROAS {_fmt(meta_value / spend)} "
            f"({_fmt(meta_conv, 0)} conversions) vs attributed ROAS {_fmt(revenue / spend)} "
            f"({_fmt(attributed, 0)} conversions, linear)"
        )
    if campaigns:
        lines.append(WHY_THEY_DIFFER)
    summary = conn.execute(
        "select total_conversions, unattributed_conversions, credited_revenue, "
        "unattributed_revenue from marts.attribution_summary where attribution_model = 'linear'"
    ).fetchone()
    if summary:
        lines.append(
            f"conversions {summary[0]} ({_fmt(summary[1], 0)} unattributed), revenue "
            f"{_fmt(summary[2])} ({_fmt(summary[3])} unattributed)"
        )
    for pixel, accepted, conversions, since, until in conn.execute(
        "select pixel_id, sum(events_accepted), sum(first_party_conversions), min(event_date), "
        "max(event_date) from marts.meta_vs_first_party_by_pixel "
        "where event_date > (select max(event_date) from marts.meta_vs_first_party_by_pixel) - 7 "
        "group by pixel_id order by pixel_id"
    ):
        share = f"{accepted / conversions:.0%}" if conversions else "-"
        lines.append(
            f"CAPI coverage, pixel {pixel}, {since}..{until}: {accepted} of {conversions} "
            f"first-party conversions delivered to Meta ({share}; older ones are past Meta's "
            "7-day limit)"
        )
    # a journey whose conversion reached Meta, when there is one: the delivery shows on its step
    person = conn.execute(
        "select paths.person_id, paths.user_id, paths.total_steps, paths.path_collapsed "
        "from marts.user_paths as paths where paths.user_id is not null "
        "order by exists (select 1 from marts.user_journeys as steps "
        "where steps.person_id = paths.person_id and steps.capi_delivery_status = 'sent') desc, "
        "paths.conversions desc, paths.total_steps desc, paths.person_id limit 1"
    ).fetchone()
    if person:
        lines.append(f"journey of user {person[1]} ({person[2]} steps): {person[3]}")
        for step, ttype, etype, at, capi in conn.execute(
            "select step_number, touchpoint_type, event_type, occurred_at, capi_delivery_status "
            "from marts.user_journeys where person_id = %s order by step_number limit 12",
            (person[0],),
        ):
            delivery = f"  (Conversions API: {capi})" if capi else ""
            lines.append(f"  {step:>2}. {at:%Y-%m-%d %H:%M} {ttype:<10} {etype}{delivery}")
    return lines
