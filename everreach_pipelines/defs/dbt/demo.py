"""`everreach demo`'s dbt step: build the marts, then summarize campaign ROAS and one journey."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from everreach.warehouse.database import connect
from everreach_pipelines.defs.dbt.project import run_dbt

MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay")


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def run_demo(ctx: Any) -> list[str]:
    """Run `dbt build` on `ctx.database_url`; return lines with campaign ROAS (Meta-reported and
    attributed per model) and the journey of the user with the most steps."""
    ctx.log("dbt build: staging → intermediate → marts (with data and unit tests)")
    # artifacts go to a throw-away folder: the demo must not disturb a developer's target/
    with tempfile.TemporaryDirectory(prefix="everreach-dbt-") as tmp:
        result = run_dbt(
            ctx.database_url,
            ["build", "--quiet"],
            target_path=Path(tmp) / "target",
            log_path=Path(tmp) / "logs",
        )
    node_results = getattr(getattr(result, "result", None), "results", []) or []
    models = sum(1 for r in node_results if r.node.resource_type == "model")
    tests = sum(1 for r in node_results if r.node.resource_type in {"test", "unit_test"})
    lines = [f"dbt build: {models} models and {tests} tests passed"]

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
