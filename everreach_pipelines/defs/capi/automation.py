"""When CAPI delivery runs: a sensor on pending events, and a sweeping schedule."""

# No `from __future__ import annotations`: Dagster reads the config and resource
# annotations at decoration time.
import dagster as dg

from everreach.capi.settings import CapiSettings
from everreach_pipelines.defs.capi.assets import capi_event_batches, capi_user_event_conversions
from everreach_pipelines.resources.warehouse import WarehouseResource

capi_delivery_job = dg.define_asset_job(
    "capi_delivery_job",
    selection=[capi_user_event_conversions, capi_event_batches],
    description="Pick up user_event conversions, then deliver every pending CAPI event.",
)


# Read when the code location loads: a bad value fails the load naming the variable.
_SETTINGS = CapiSettings.from_env()

_WORK = """
select
    (select max(id) from meta_conversion_event where status = 'pending'),
    (select count(*) from meta_conversion_event where status = 'pending')
"""


@dg.sensor(
    job=capi_delivery_job,
    minimum_interval_seconds=_SETTINGS.sensor_interval_seconds,
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
    cron_schedule=_SETTINGS.sweep_cron,
    description="Fallback sweep: picks up user_event conversions and retries what is "
    "still pending (META_CAPI_SWEEP_CRON, default every 30 minutes).",
)
