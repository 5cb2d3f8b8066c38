-- One unified, typed stream of touchpoints with the person and the campaign they point to: the
-- incremental `int_touchpoints_identified`, as BI tools read it. A view: the journey and
-- attribution models build on the intermediate table, so no model reads back from this layer.
{{ config(materialized='view') }}

select
    event_id,
    person_id,
    user_id,
    identity_method,
    anonymous_id,
    touchpoint_type,
    event_type,
    platform,
    message_direction,
    occurred_at,
    inserted_at,
    thread_id,
    campaign_id,
    meta_campaign_id,
    meta_ad_id,
    utm_source,
    utm_medium,
    utm_campaign,
    is_conversion,
    conversion_value,
    currency,
    order_id,
    content_hash,
    dbt_loaded_at
from {{ ref('int_touchpoints_identified') }}
