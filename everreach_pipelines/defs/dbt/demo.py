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
from everreach_pipelines.demo_instance import (
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
    and recorded for the demo's days, in one run; return lines with campaign ROAS (Meta-reported and attributed per model)
    and the journey of the user with the most steps."""
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
        summary = conn.execute(
            "select total_conversions, unattributed_conversions, credited_revenue, "
            "unattributed_revenue from marts.attribution_summary where attribution_model = 'linear'"
        ).fetchone()
        if summary:
            lines.append(
                f"conversions {summary[0]} ({_fmt(summary[1], 0)} unattributed), revenue "
                f"{_fmt(summary[2])} ({_fmt(summary[3])} unattributed)"
            )
        person = conn.execute(
            "select person_id, user_id, total_steps, path_collapsed from marts.user_paths "
            "where user_id is not null order by conversions desc, total_steps desc, person_id limit 1"
        ).fetchone()
        if person:
            lines.append(f"journey of user {person[1]} ({person[2]} steps): {person[3]}")
            for step, ttype, etype, at in conn.execute(
                "select step_number, touchpoint_type, event_type, occurred_at from marts.user_journeys "
                "where person_id = %s order by step_number limit 12",
                (person[0],),
            ):
                lines.append(f"  {step:>2}. {at:%Y-%m-%d %H:%M} {ttype:<10} {etype}")
    return lines
