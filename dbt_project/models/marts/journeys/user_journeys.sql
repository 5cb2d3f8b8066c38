-- Each person's ordered path, one row per step: the stored steps (`int_journey_steps`,
-- incremental) with the columns that change whenever a step is appended (the last touch, which
-- step is the last) taken from the person's `user_paths` row. A view: nothing to rewrite when a
-- path grows by a step, and both sides are read through their person_id indexes. A
-- conversion's Conversions API delivery is a property of its step (`capi_delivery_status`),
-- looked up here through the queue's source reference, so a delivery made after the step was
-- stored shows without rewriting it.
{{ config(materialized='view') }}

select
    steps.person_id,
    steps.user_id,
    steps.event_id,
    steps.step_number,
    steps.touchpoint_type,
    steps.event_type,
    steps.occurred_at,
    steps.seconds_since_previous_step,
    steps.first_touch_at,
    paths.last_touch_at,
    steps.is_first_step,
    steps.step_number = paths.total_steps as is_last_step,
    steps.campaign_id,
    steps.is_conversion,
    steps.dbt_loaded_at,
    case
        -- a conversion that came in through the Conversions API is in user_event because
        -- Meta accepted it
        when steps.is_conversion and steps.event_type like 'meta\_conversion\_%' then 'sent'
        else capi.delivery_status
    end as capi_delivery_status
from {{ ref('int_journey_steps') }} as steps
left join {{ ref('user_paths') }} as paths on paths.person_id = steps.person_id
left join {{ ref('stg_meta__conversion_events') }} as capi
    on
        steps.is_conversion
        and capi.intake_source = 'user_event'
        and capi.source_event_ref = steps.event_id::text
