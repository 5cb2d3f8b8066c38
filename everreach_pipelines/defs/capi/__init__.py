"""Conversions API domain: the queue table, user_event pickup, delivery asset, sensor and
schedule."""

from __future__ import annotations

import dagster as dg

from everreach_pipelines.defs.capi.assets import (
    capi_event_batches,
    capi_user_event_conversions,
    meta_conversion_event,
)
from everreach_pipelines.defs.capi.automation import (
    capi_delivery_job,
    capi_pending_sensor,
    capi_sweep_schedule,
)
from everreach_pipelines.defs.capi.checks import capi_event_batches_freshness

defs = dg.Definitions(
    assets=[meta_conversion_event, capi_user_event_conversions, capi_event_batches],
    asset_checks=[capi_event_batches_freshness],
    jobs=[capi_delivery_job],
    sensors=[capi_pending_sensor],
    schedules=[capi_sweep_schedule],
)

__all__ = ["defs"]
