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

from everreach_pipelines.resources.warehouse import WarehouseResource

GROUP = "messaging"
OWNERS = ["team:messaging"]
#: Events failed or pending longer than this fail the check (replay or fix them).
UNAPPLIED_THRESHOLD_MINUTES = 60

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
    cutoff = datetime.now(UTC) - timedelta(minutes=UNAPPLIED_THRESHOLD_MINUTES)
    with warehouse.connect() as conn:
        row = conn.execute(_LOG_STATS, (cutoff,)).fetchone()
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
    from webhook_receiver.replay import replay_events

    since = datetime.fromisoformat(config.since) if config.since else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    counts = replay_events(warehouse.url(), since=since, failed_only=config.failed_only)
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
