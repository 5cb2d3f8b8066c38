{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        pre_hook="{{ delete_days_from(reconciliation_recompute_from(meta_side=false), 'event_date') }}",
        indexes=[{'columns': ['pixel_id', 'event_date'], 'unique': true}, {'columns': ['event_date']}],
    )
}}

-- depends_on: {{ ref('int_touchpoints_identified') }}
-- What Meta sees vs what happened, per pixel and day: the Conversions API queue's outcome
-- (queued, accepted, rejected, failed, still pending, test events), the first-party
-- conversions of the day beside the ones delivered and accepted (CAPI coverage), and the share
-- of accepted events that carried each match key (the data behind Meta's Event Match Quality,
-- from what was sent). Days are UTC; a pixel has a row for every day with conversions from its
-- first queued event on, so a day it delivered nothing shows as coverage 0. Incremental by
-- day, like `meta_vs_first_party_daily` (without Meta's side).
{%- set recompute_from = reconciliation_recompute_from(meta_side=false) %}
with queue as (
    select
        pixel_id,
        (event_time at time zone 'UTC')::date as event_date,
        delivery_status,
        is_test,
        delivery_status = 'sent' and not is_test as is_accepted,
        has_email,
        has_phone,
        has_external_id,
        has_fbp,
        has_fbc,
        has_client_ip_and_user_agent
    from {{ ref('stg_meta__conversion_events') }}
    where event_time >= {{ recompute_from }}::timestamp at time zone 'UTC'
),

per_pixel_day as (
    select
        pixel_id,
        event_date,
        count(*) as events_queued,
        count(*) filter (where is_accepted) as events_accepted,
        count(*) filter (where delivery_status = 'rejected') as events_rejected,
        count(*) filter (where delivery_status = 'failed') as events_failed,
        count(*) filter (where delivery_status = 'pending') as events_pending,
        count(*) filter (where is_test) as test_events,
        count(*) filter (where is_accepted and has_email) as with_email,
        count(*) filter (where is_accepted and has_phone) as with_phone,
        count(*) filter (where is_accepted and has_external_id) as with_external_id,
        count(*) filter (where is_accepted and has_fbp) as with_fbp,
        count(*) filter (where is_accepted and has_fbc) as with_fbc,
        count(*) filter (where is_accepted and has_client_ip_and_user_agent)
            as with_client_ip_and_user_agent
    from queue
    group by pixel_id, event_date
),

-- every first-party conversion has exactly one first-touch row (its first touch, or its
-- unattributed bucket row)
conversions as (
    select
        (converted_at at time zone 'UTC')::date as event_date,
        count(*) as first_party_conversions
    from {{ ref('attribution_touch_credits') }}
    where
        attribution_model = 'first_touch'
        and converted_at >= {{ recompute_from }}::timestamp at time zone 'UTC'
    group by (converted_at at time zone 'UTC')::date
),

-- every pixel with its first queued day (over the whole queue: a pixel that stopped sending
-- still has its days)
pixels as (
    select pixel_id, min((event_time at time zone 'UTC')::date) as first_event_date
    from {{ ref('stg_meta__conversion_events') }}
    group by pixel_id
),

pixel_days as (
    select pixels.pixel_id, conversions.event_date
    from pixels
    inner join conversions on conversions.event_date >= pixels.first_event_date
    union
    select pixel_id, event_date from per_pixel_day
)

select
    pixel_days.pixel_id,
    pixel_days.event_date,
    coalesce(per_pixel_day.events_queued, 0) as events_queued,
    coalesce(per_pixel_day.events_accepted, 0) as events_accepted,
    coalesce(per_pixel_day.events_rejected, 0) as events_rejected,
    coalesce(per_pixel_day.events_failed, 0) as events_failed,
    coalesce(per_pixel_day.events_pending, 0) as events_pending,
    coalesce(per_pixel_day.test_events, 0) as test_events,
    coalesce(conversions.first_party_conversions, 0) as first_party_conversions,
    {{ share('coalesce(per_pixel_day.events_accepted, 0)', 'conversions.first_party_conversions') }} as capi_coverage,
    {{ share('per_pixel_day.with_email', 'per_pixel_day.events_accepted') }} as match_key_email_share,
    {{ share('per_pixel_day.with_phone', 'per_pixel_day.events_accepted') }} as match_key_phone_share,
    {{ share('per_pixel_day.with_external_id', 'per_pixel_day.events_accepted') }} as match_key_external_id_share,
    {{ share('per_pixel_day.with_fbp', 'per_pixel_day.events_accepted') }} as match_key_fbp_share,
    {{ share('per_pixel_day.with_fbc', 'per_pixel_day.events_accepted') }} as match_key_fbc_share,
    {{ share('per_pixel_day.with_client_ip_and_user_agent', 'per_pixel_day.events_accepted') }} as match_key_ip_user_agent_share,
    -- when the row was written: the next run recomputes from what changed after it
    now() as dbt_loaded_at
from pixel_days
left join per_pixel_day
    on
        per_pixel_day.pixel_id = pixel_days.pixel_id
        and per_pixel_day.event_date = pixel_days.event_date
left join conversions on conversions.event_date = pixel_days.event_date
