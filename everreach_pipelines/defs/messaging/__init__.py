"""Messaging domain: the raw webhook log (observed + checked), the conversation tables the
receiver writes, and the replay job.

The data itself is written by the webhook receiver (``webhook_receiver/``).
"""

from __future__ import annotations

import dagster as dg

from everreach_pipelines.defs.messaging.assets import (
    conversation_message,
    conversation_thread,
    meta_webhook_event,
)
from everreach_pipelines.defs.messaging.checks import meta_webhook_event_freshness
from everreach_pipelines.defs.messaging.schedules import (
    meta_webhook_event_schedule,
    replay_failed_webhooks_schedule,
    replay_webhook_events_job,
)

defs = dg.Definitions(
    assets=[meta_webhook_event, conversation_thread, conversation_message],
    asset_checks=[meta_webhook_event_freshness],
    jobs=[replay_webhook_events_job],
    schedules=[replay_failed_webhooks_schedule, meta_webhook_event_schedule],
)

__all__ = ["defs"]
