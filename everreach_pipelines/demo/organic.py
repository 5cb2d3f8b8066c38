"""`everreach demo` stage: materialize the organic assets for the demo's date range.

Account insights are daily values Meta keeps for months: one range run fetches the whole
window. Post insights are lifetime counters Meta only gives "as of now", so a past day's
snapshot cannot be fetched later. Against the in-process sandbox the demo moves the
sandbox clock to each day in turn and takes that day's snapshot, as 30 daily scheduled
runs would have; against Meta it snapshots the last day only.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from dagster import materialize
from psycopg.types.json import Jsonb

from everreach.warehouse.database import connect
from everreach_pipelines.defs.organic.assets import organic_posts, social_account_insights
from everreach_pipelines.defs.organic.partitions import organic_daily_partitions
from everreach_pipelines.demo.instance import RANGE_END_TAG, RANGE_START_TAG, demo_instance
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource


def register_sandbox_accounts(database_url: str, sandbox_base_url: str) -> tuple[int, int]:
    """Add the sandbox's IG accounts and Pages to meta_platform_config (idempotent)."""
    listing = httpx.get(f"{sandbox_base_url}/_sandbox/organic/accounts", timeout=10).json()
    rows = [
        ("instagram_account", a["id"], a["name"], a["page_id"])
        for a in listing["instagram_accounts"]
    ] + [("facebook_page", p["id"], p["name"], None) for p in listing["facebook_pages"]]
    with connect(database_url) as conn:
        for platform, external_id, name, parent in rows:
            conn.execute(
                "insert into meta_platform_config (platform, external_id, name, "
                "parent_external_id, settings) values (%s, %s, %s, %s, %s) "
                "on conflict (platform, external_id) do nothing",
                (platform, external_id, name, parent, Jsonb({"source": "sandbox demo"})),
            )
        conn.commit()
    return len(listing["instagram_accounts"]), len(listing["facebook_pages"])


def _partition_keys(start: date, end: date) -> list[str]:
    last = date.fromisoformat(organic_daily_partitions.get_last_partition_key())
    first = date.fromisoformat(organic_daily_partitions.get_first_partition_key())
    lo, hi = max(start, first), min(end, last)
    return [(lo + timedelta(days=i)).isoformat() for i in range((hi - lo).days + 1)]


def run_demo(ctx: Any) -> list[str]:
    """Materialize organic posts/snapshots and account insights for ctx's date range."""
    kwargs = {
        k: v
        for k, v in ctx.graph_client_kwargs.items()
        if k in MetaGraphResource.model_fields and v is not None
    }
    resources = {
        "warehouse": WarehouseResource(database_url=ctx.database_url),
        "meta": MetaGraphResource(**kwargs),
    }
    instance = demo_instance(ctx)
    lines: list[str] = []
    if ctx.sandbox_base_url:
        n_ig, n_pages = register_sandbox_accounts(ctx.database_url, ctx.sandbox_base_url)
        lines.append(f"accounts: {n_ig} Instagram, {n_pages} Facebook Pages (sandbox)")
    keys = _partition_keys(ctx.start_date, ctx.end_date)
    if not keys:
        return lines + ["no partition in range"]
    ctx.log(f"social_account_insights for {keys[0]}..{keys[-1]}")
    result = materialize(
        [social_account_insights],
        resources=resources,
        instance=instance,
        tags={
            RANGE_START_TAG: keys[0],
            RANGE_END_TAG: keys[-1],
        },
    )
    md = result.asset_materializations_for_node("social_account_insights")[0].metadata
    lines.append(
        f"social_account_insights: {md['rows'].value:,} rows, {md['api_calls'].value} API calls"
    )
    checks = list(result.get_asset_check_evaluations())

    sandbox = ctx.sandbox
    snapshot_keys = keys if sandbox is not None else keys[-1:]
    totals = {"rows": 0, "skipped": 0, "calls": 0}
    restore = (sandbox.now(), time.monotonic()) if sandbox is not None else None
    try:
        for key in snapshot_keys:
            day = date.fromisoformat(key)
            as_of = datetime(day.year, day.month, day.day, 1, tzinfo=UTC) + timedelta(days=1)
            if sandbox is not None:
                sandbox.set_now(as_of)  # the morning after, when the schedule would run
            else:
                as_of = datetime.now(UTC)
            run = materialize(
                [organic_posts],
                resources=resources,
                instance=instance,
                partition_key=key,
                run_config={"ops": {"organic_posts": {"config": {"as_of": as_of.isoformat()}}}},
            )
            for mat in run.asset_materializations_for_node("organic_posts"):
                if mat.asset_key.path == ["social_post_insights"]:
                    totals["rows"] += mat.metadata["rows"].value
                    totals["skipped"] += mat.metadata["skipped"].value
                    totals["calls"] += mat.metadata["api_calls"].value
            checks += list(run.get_asset_check_evaluations())
    finally:
        if restore is not None:
            sandbox.set_now(restore[0] + timedelta(seconds=time.monotonic() - restore[1]))
    with connect(ctx.database_url) as conn:
        posts = conn.execute(
            "select platform, count(*) from social_media_post group by 1 order by 1"
        ).fetchall()
    lines.append("social_media_post: " + ", ".join(f"{n:,} {p}" for p, n in posts))
    lines.append(
        f"social_post_insights: {totals['rows']:,} snapshot rows over "
        f"{len(snapshot_keys)} day(s), {totals['skipped']} refused items skipped, "
        f"{totals['calls']} API calls"
    )
    failed = sorted({c.check_name for c in checks if not c.passed})
    lines.append(
        f"checks: {sum(c.passed for c in checks)}/{len(checks)} passed"
        + (f" (failed: {', '.join(failed)})" if failed else "")
    )
    return lines


__all__ = ["register_sandbox_accounts", "run_demo"]
