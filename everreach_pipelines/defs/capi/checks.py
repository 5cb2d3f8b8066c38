"""The CAPI domain's freshness check (the checks on rejected and stale events run with the
delivery asset, in `assets.py`)."""

from __future__ import annotations

from datetime import timedelta

from everreach_pipelines.defs.capi.assets import capi_event_batches
from everreach_pipelines.freshness import freshness_check

#: No conversion queued and no delivery attempted for this long warns: the app stopped
#: sending conversions, or pickup / delivery stopped running.
CAPI_MAX_AGE = timedelta(hours=48)

capi_event_batches_freshness = freshness_check(
    asset=capi_event_batches,
    name="fresh_within_48_hours",
    table="meta_conversion_event",
    column="last_activity_at",  # newest of created_at / last_attempt_at
    max_age=CAPI_MAX_AGE,
    description="A conversion was queued or a delivery attempted in the last 48 hours "
    "(newest of meta_conversion_event.created_at and last_attempt_at).",
    queries=["select greatest(max(created_at), max(last_attempt_at)) from meta_conversion_event"],
)
