"""The webhook log as a Dagster asset, its health check, and the replay job.

The receiver writes ``meta_webhook_event`` and the conversation tables continuously;
Dagster does not load them. What Dagster adds: an observation of the log (counts by
status, oldest unapplied event) with a check that fails when events stay unapplied
longer than a threshold, and a job that re-applies stored webhooks (idempotently).
"""

# No `from __future__ import annotations`: Dagster reads config and resource
# annotations at decoration time.
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from everreach_pipelines.charts import (
    FULL_CHART_HINT,
    Panel,
    Series,
    chart_markdown,
    sparkline_markdown,
)
from everreach_pipelines.freshness import freshness_check
from everreach_pipelines.resources.warehouse import WarehouseResource

GROUP = "messaging"
OWNERS = ["team:messaging"]
#: Events failed or pending longer than this fail the check (replay or fix them).
UNAPPLIED_THRESHOLD_MINUTES = 60
#: Metadata key of the webhook volume / apply lag chart (last 24 h).
CHART_VOLUME_AND_LAG = "webhook_volume_and_apply_lag_chart"
#: Metadata key of its inline sparkline, shown on the asset's Overview.
SPARK_VOLUME_AND_LAG = "webhook_volume_and_apply_lag"
#: No webhook received for longer than this warns (subscription, token or receiver down).
WEBHOOK_MAX_AGE = timedelta(hours=24)

_LOG_STATS = """
select
    count(*),
    count(*) filter (where status = 'applied'),
    count(*) filter (where status = 'failed'),
    count(*) filter (where status = 'pending'),
    count(*) filter (where status = 'ignored'),
    count(*) filter (where status in ('pending', 'failed') and received_at < %s),
    min(received_at) filter (where status in ('pending', 'failed')),
    max(received_at)
from meta_webhook_event
"""


#: Per hour of the last 24 h (received_at index): events, and the p50 / p99 of
#: applied_at − received_at in seconds over the applied ones. The null-hour row (grouping
#: set ()) carries the 24 h totals.
_HOURLY = """
select
    date_trunc('hour', received_at) as hour,
    count(*),
    percentile_cont(0.5) within group (order by extract(epoch from applied_at - received_at))
        filter (where applied_at is not null),
    percentile_cont(0.99) within group (order by extract(epoch from applied_at - received_at))
        filter (where applied_at is not null)
from meta_webhook_event
where received_at >= %s
group by grouping sets ((date_trunc('hour', received_at)), ())
order by 1 nulls last
"""


def _lag_chart(hourly: list[tuple]) -> dg.MetadataValue | None:
    """Webhooks per hour (bars) over apply lag p50/p99 per hour; None without rows."""
    rows = [r for r in hourly if r[0] is not None]
    return chart_markdown(
        "meta_webhook_event, last 24 h",
        [
            Panel(
                "webhooks received per hour",
                [Series("events", [(h, n) for h, n, _, _ in rows], kind="bar")],
            ),
            Panel(
                "apply lag (applied_at - received_at), seconds",
                [
                    Series("p50", [(h, p50) for h, _, p50, _ in rows if p50 is not None]),
                    Series(
                        "p99",
                        [(h, p99) for h, _, _, p99 in rows if p99 is not None],
                        linestyle="--",
                    ),
                ],
                ylabel="s",
            ),
        ],
    )


def _lag_sparkline(hourly: list[tuple]) -> dg.MetadataValue | None:
    """Events per hour and p99 apply lag, each on its own scale, small enough to show
    inline; None without rows."""
    rows = [r for r in hourly if r[0] is not None]
    return sparkline_markdown(
        "webhooks per hour and p99 apply lag, last 24 h",
        [
            Series("events/h", [(h, n) for h, n, _, _ in rows]),
            Series("p99 lag s", [(h, p99) for h, _, _, p99 in rows if p99 is not None]),
        ],
        caption=["last 24 h, each on its own scale", FULL_CHART_HINT],
        shared_scale=False,
    )


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            "no_stale_unapplied_webhooks",
            asset="meta_webhook_log",
            description=f"No webhook has stayed failed or pending for more than "
            f"{UNAPPLIED_THRESHOLD_MINUTES} minutes.",
        )
    ],
)
def meta_webhook_log(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Every Meta webhook the receiver stored (meta_webhook_event), raw and as applied.

    Written by the webhook receiver, not by Dagster: materializing observes the log —
    counts by status, the oldest unapplied event — and checks nothing is stuck.
    """
    now = datetime.now(UTC)
    cutoff = now - timedelta(minutes=UNAPPLIED_THRESHOLD_MINUTES)
    with warehouse.connect() as conn:
        row = conn.execute(_LOG_STATS, (cutoff,)).fetchone()
        hourly = conn.execute(_HOURLY, (now - timedelta(hours=24),)).fetchall()
    totals = [r for r in hourly if r[0] is None]
    day_p50, day_p99 = (totals[0][2], totals[0][3]) if totals else (None, None)
    chart = _lag_chart(hourly)
    spark = _lag_sparkline(hourly)
    total, applied, failed, pending, ignored, stale, oldest_unapplied, newest = row
    context.log.info(f"webhook log: {total} events, {failed} failed, {stale} stale")
    return dg.MaterializeResult(
        metadata={
            "events": total,
            "applied": applied,
            "failed": failed,
            "pending": pending,
            "ignored": ignored,
            "oldest_unapplied": str(oldest_unapplied) if oldest_unapplied else "",
            "newest_received": str(newest) if newest else "",
            **(
                {
                    "apply_lag_p50_seconds_24h": round(float(day_p50), 3),
                    "apply_lag_p99_seconds_24h": round(float(day_p99), 3),
                }
                if day_p50 is not None
                else {}
            ),
            **({SPARK_VOLUME_AND_LAG: spark} if spark is not None else {}),
            **({CHART_VOLUME_AND_LAG: chart} if chart is not None else {}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_stale_unapplied_webhooks",
                passed=stale == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "stale_unapplied": stale,
                    "threshold_minutes": UNAPPLIED_THRESHOLD_MINUTES,
                },
                description="Run replay_webhook_events_job (failed_only) after fixing the cause."
                if stale
                else None,
            )
        ],
    )


meta_webhook_log_freshness = freshness_check(
    asset=meta_webhook_log,
    name="fresh_within_24_hours",
    table="meta_webhook_event",
    column="received_at",
    max_age=WEBHOOK_MAX_AGE,
    description="Meta delivered at least one webhook in the last 24 hours (newest "
    "meta_webhook_event.received_at; an index lookup). Silence usually means the app's "
    "subscription, the Page/WABA token or the receiver is down.",
)


class ReplayConfig(dg.Config):
    """Which stored webhooks to re-apply."""

    failed_only: bool = Field(default=True, description="Only events whose apply failed.")
    since: str = Field(
        default="", description="ISO time: only events received at or after it (empty: all)."
    )


@dg.op(description="Re-apply stored raw webhooks (idempotent; replaying twice changes nothing).")
def replay_webhook_events(
    context: dg.OpExecutionContext, config: ReplayConfig, warehouse: WarehouseResource
) -> dict:
    """Re-apply the selected webhooks from meta_webhook_event."""
    from everreach.messaging.replay import replay_events

    since = datetime.fromisoformat(config.since) if config.since else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    # Progress (events done, rate, ETA) shows in the run's logs every few seconds.
    counts = replay_events(
        warehouse.url(), since=since, failed_only=config.failed_only, log=context.log.info
    )
    context.log.info(f"replayed: {counts}")
    context.add_output_metadata({k: int(v) for k, v in counts.items()})
    return counts


@dg.job(description="Re-apply stored Meta webhooks (e.g. after fixing a failure).")
def replay_webhook_events_job() -> None:
    """One op: replay."""
    replay_webhook_events()


replay_failed_webhooks_schedule = dg.ScheduleDefinition(
    name="replay_failed_webhooks_schedule",
    job=replay_webhook_events_job,
    cron_schedule="17 * * * *",
    description="Hourly: re-apply webhooks whose apply failed (e.g. an edit that arrived "
    "before its message).",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

meta_webhook_log_schedule = dg.ScheduleDefinition(
    name="meta_webhook_log_schedule",
    target=[meta_webhook_log],
    cron_schedule="*/15 * * * *",
    description="Every 15 minutes: observe the webhook log and check nothing is stuck.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
