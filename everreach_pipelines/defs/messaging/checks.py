"""The messaging domain's freshness check (the health check of unapplied events runs with the
asset, in `assets.py`)."""

from __future__ import annotations

from datetime import timedelta

from everreach_pipelines.defs.messaging.assets import meta_webhook_event
from everreach_pipelines.freshness import freshness_check

#: No webhook received for longer than this warns (subscription, token or receiver down).
WEBHOOK_MAX_AGE = timedelta(hours=24)

meta_webhook_event_freshness = freshness_check(
    asset=meta_webhook_event,
    name="fresh_within_24_hours",
    table="meta_webhook_event",
    column="received_at",
    max_age=WEBHOOK_MAX_AGE,
    description="Meta delivered at least one webhook in the last 24 hours (newest "
    "meta_webhook_event.received_at; an index lookup). Silence usually means the app's "
    "subscription, the Page/WABA token or the receiver is down.",
)
