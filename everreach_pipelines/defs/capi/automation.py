"""When CAPI delivery runs: a sensor on pending events, and a sweeping schedule."""

# No `from __future__ import annotations`: Dagster reads the config and resource
# annotations at decoration time.
import os

import dagster as dg

from everreach_pipelines.defs.capi.assets import capi_event_batches, capi_user_event_conversions
from everreach_pipelines.resources.warehouse import WarehouseResource

capi_delivery_job = dg.define_asset_job(
    "capi_delivery_job",
    selection=[capi_user_event_conversions, capi_event_batches],
    description="Pick up user_event conversions, then deliver every pending CAPI event.",
)


def _interval_seconds() -> int:
    raw = os.environ.get("META_CAPI_SENSOR_INTERVAL_SECONDS", "").strip()
    if not raw:
        return 60
    if not raw.isdigit() or int(raw) < 5:
        from everreach.settings import SettingError

        raise SettingError(
            "META_CAPI_SENSOR_INTERVAL_SECONDS", "must be a whole number ≥ 5", "seconds, e.g. 60"
        )
    return int(raw)


_WORK = """
select
    (select max(id) from meta_conversion_event where status = 'pending'),
    (select count(*) from meta_conversion_event where status = 'pending')
"""


@dg.sensor(
    job=capi_delivery_job,
    minimum_interval_seconds=_interval_seconds(),
    description="Starts CAPI delivery when events are pending (interval: "
    "META_CAPI_SENSOR_INTERVAL_SECONDS, default 60 s).",
)
def capi_pending_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    """One run per new set of pending events (the run key is the newest pending id)."""
    with warehouse.connect() as conn:
        newest, count = conn.execute(_WORK).fetchone()
    if not count:
        return dg.SkipReason("no pending CAPI events")
    # The same pending set never triggers twice; events left pending by a failed run
    # are swept by the schedule.
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"capi-pending-{newest}")])


capi_sweep_schedule = dg.ScheduleDefinition(
    name="capi_sweep_schedule",
    job=capi_delivery_job,
    cron_schedule=os.environ.get("META_CAPI_SWEEP_CRON", "").strip() or "*/30 * * * *",
    description="Fallback sweep: picks up user_event conversions and retries what is "
    "still pending (META_CAPI_SWEEP_CRON, default every 30 minutes).",
)
