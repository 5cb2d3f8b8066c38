"""The raw webhook log as a Dagster asset, and the conversation tables the receiver writes.

The receiver writes ``meta_webhook_event`` and the conversation tables continuously;
Dagster does not load them. What Dagster adds: an observation of the log (counts by
status, oldest unapplied event) with a check that fails when events stay unapplied
longer than a threshold; the replay job is in `schedules.py`.
"""

# No `from __future__ import annotations`: Dagster reads config and resource
# annotations at decoration time.
from datetime import UTC, datetime, timedelta

import dagster as dg

from everreach.messaging.checks import webhook_log_stats
from everreach_pipelines.defs.messaging.charts import (
    CHART_VOLUME_AND_LAG,
    SPARK_VOLUME_AND_LAG,
    lag_chart,
    lag_sparkline,
)
from everreach_pipelines.resources.warehouse import WarehouseResource
from everreach_pipelines.tables import written_elsewhere

GROUP = "messaging"
OWNERS = ["team:messaging"]
#: Events failed or pending longer than this fail the check (replay or fix them).
UNAPPLIED_THRESHOLD_MINUTES = 60

conversation_thread = written_elsewhere(
    "conversation_thread",
    written_by="the webhook receiver and the send endpoints",
    description="Conversation threads: platform × business account × contact, with the "
    "earliest referral and the contact's name.",
    group=GROUP,
    owners=OWNERS,
)
conversation_message = written_elsewhere(
    "conversation_message",
    written_by="the webhook receiver and the send endpoints",
    description="Messages in and out (mid / wamid), with delivery status, edits and deletes.",
    group=GROUP,
    owners=OWNERS,
)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            "no_stale_unapplied_webhooks",
            asset="meta_webhook_event",
            description=f"No webhook has stayed failed or pending for more than "
            f"{UNAPPLIED_THRESHOLD_MINUTES} minutes.",
        )
    ],
)
def meta_webhook_event(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Every Meta webhook the receiver stored (meta_webhook_event), raw and as applied.

    Written by the webhook receiver, not by Dagster: materializing observes the log —
    counts by status, the oldest unapplied event — and checks nothing is stuck.
    """
    with warehouse.connect() as conn:
        stats = webhook_log_stats(
            conn,
            datetime.now(UTC),
            unapplied_after=timedelta(minutes=UNAPPLIED_THRESHOLD_MINUTES),
        )
    chart = lag_chart(stats.hours)
    spark = lag_sparkline(stats.hours)
    context.log.info(
        f"webhook log: {stats.total} events, {stats.failed} failed, {stats.stale} stale"
    )
    return dg.MaterializeResult(
        metadata={
            "events": stats.total,
            "applied": stats.applied,
            "failed": stats.failed,
            "pending": stats.pending,
            "ignored": stats.ignored,
            "oldest_unapplied": str(stats.oldest_unapplied) if stats.oldest_unapplied else "",
            "newest_received": str(stats.newest_received) if stats.newest_received else "",
            **(
                {
                    "apply_lag_p50_seconds_24h": round(stats.lag_p50, 3),
                    "apply_lag_p99_seconds_24h": round(stats.lag_p99, 3),
                }
                if stats.lag_p50 is not None and stats.lag_p99 is not None
                else {}
            ),
            **({SPARK_VOLUME_AND_LAG: spark} if spark is not None else {}),
            **({CHART_VOLUME_AND_LAG: chart} if chart is not None else {}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_stale_unapplied_webhooks",
                passed=stats.stale == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "stale_unapplied": stats.stale,
                    "threshold_minutes": UNAPPLIED_THRESHOLD_MINUTES,
                },
                description="Run replay_webhook_events_job (failed_only) after fixing the cause."
                if stats.stale
                else None,
            )
        ],
    )
