"""Conversions API domain: user_event pickup, delivery asset, sensor and schedule."""

from __future__ import annotations

import dagster as dg

from everreach_pipelines.defs.capi.assets import (
    capi_event_batches,
    capi_event_batches_freshness,
    capi_user_event_conversions,
)
from everreach_pipelines.defs.capi.automation import (
    capi_delivery_job,
    capi_pending_sensor,
    capi_sweep_schedule,
)

defs = dg.Definitions(
    assets=[capi_user_event_conversions, capi_event_batches],
    asset_checks=[capi_event_batches_freshness],
    jobs=[capi_delivery_job],
    sensors=[capi_pending_sensor],
    schedules=[capi_sweep_schedule],
)

__all__ = ["defs"]
