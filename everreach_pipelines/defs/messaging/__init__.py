"""Messaging domain: the webhook log (observed + checked) and the replay job.

The data itself is written by the webhook receiver (``webhook_receiver/``).
"""

from __future__ import annotations

import dagster as dg

from everreach_pipelines.defs.messaging.assets import (
    meta_webhook_log,
    meta_webhook_log_freshness,
    meta_webhook_log_schedule,
    replay_failed_webhooks_schedule,
    replay_webhook_events_job,
)

defs = dg.Definitions(
    assets=[meta_webhook_log],
    asset_checks=[meta_webhook_log_freshness],
    jobs=[replay_webhook_events_job],
    schedules=[replay_failed_webhooks_schedule, meta_webhook_log_schedule],
)

__all__ = ["defs"]
