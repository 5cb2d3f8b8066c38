"""The replay job (re-apply stored webhooks) and the messaging schedules (off by default)."""

# No `from __future__ import annotations`: Dagster reads config and resource
# annotations at decoration time.
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from everreach_pipelines.defs.messaging.assets import meta_webhook_event
from everreach_pipelines.resources.warehouse import WarehouseResource


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

meta_webhook_event_schedule = dg.ScheduleDefinition(
    name="meta_webhook_event_schedule",
    target=[meta_webhook_event],
    cron_schedule="*/15 * * * *",
    description="Every 15 minutes: observe the webhook log and check nothing is stuck.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
