{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        indexes=[
            {'columns': ['event_id'], 'unique': true},
            {'columns': ['inserted_at']},
            {'columns': ['thread_id']},
        ],
    )
}}

-- Every user_event typed as a touchpoint (no identity yet: see `int_touchpoints_identified`).
-- Incremental on `inserted_at` with a late-arrival lookback, so an event that happened days ago
-- but was written today is still picked up. The `meta_conversion_*` event CAPI delivery logs
-- for a conversion queued from an app event is that conversion's delivery, not a touchpoint of
-- its own: it is left out, and the journey shows the delivery on the app event's step. A test
-- event (sent with a test_event_code) never happened to anyone: left out too.
with events as (
    select * from {{ ref('stg_everreach__user_events') }} as staged
    {% if is_incremental() %}
        where inserted_at >= {{ incremental_cutoff('inserted_at') }}
        -- events re-read by the lookback and already loaded as written are left alone (a
        -- subquery per row: one probe of the event_id index each, never a scan of the table)
        and staged.inserted_at is distinct from (
            select loaded.inserted_at from {{ this }} as loaded
            where loaded.event_id = staged.event_id
        )
    {% endif %}
),

capi as (
    select * from {{ ref('stg_meta__conversion_events') }}
),

classified as (
    select
        events.event_id,
        events.user_id as event_user_id,
        events.event_type,
        events.event_source,
        events.occurred_at,
        events.inserted_at,
        events.thread_id,
        case
            when events.event_type like 'messenger\_%' then 'messenger'
            when events.event_type like 'instagram\_dm\_%' then 'instagram'
            when events.event_type like 'whatsapp\_%' then 'whatsapp'
        end as platform,
        case
            when
                events.event_type = any({{ conversion_etypes_array() }})
                or events.event_type like 'meta\_conversion\_%' then 'Conversion'
            when events.event_type like 'messenger\_%' then 'Messenger'
            when events.event_type like 'instagram\_dm\_%' then 'Instagram'
            when events.event_type like 'whatsapp\_%' then 'WhatsApp'
            when events.event_type in ('ad_click', 'ad_referral') then 'Ads'
            else 'Other'
        end as touchpoint_type,
        case
            when events.event_type like '%\_received' then 'inbound'
            when events.event_type like '%\_sent' then 'outbound'
        end as message_direction,
        events.meta_campaign_id,
        events.meta_ad_id,
        events.utm_source,
        events.utm_medium,
        events.utm_campaign,
        events.fbclid,
        events.ctwa_clid,
        events.referral_ref,
        events.conversion_value,
        events.currency,
        events.order_id,
        capi.external_id as capi_external_id,
        capi.user_id as capi_user_id,
        capi.conversion_event_id as capi_queue_id,
        events.event_type = any({{ conversion_etypes_array() }})
        or events.event_type like 'meta\_conversion\_%' as is_conversion_event
    from events
    left join capi
        on
            events.event_type like 'meta\_conversion\_%'
            and capi.pixel_id = events.capi_pixel_id
            and capi.event_id = events.capi_event_id
            and capi.event_name = coalesce(events.props ->> 'event_name', substr(events.event_type, 17))
    where not (
        events.event_type like 'meta\_conversion\_%'
        and (
            capi.intake_source = 'user_event'
            or coalesce(capi.is_test, false)
            or lower(coalesce(events.props ->> 'test', 'false')) = 'true'
        )
    )
)

select
    event_id,
    event_user_id,
    event_type,
    event_source,
    occurred_at,
    inserted_at,
    thread_id,
    platform,
    touchpoint_type,
    message_direction,
    meta_campaign_id,
    meta_ad_id,
    utm_source,
    utm_medium,
    utm_campaign,
    fbclid,
    ctwa_clid,
    referral_ref,
    case when is_conversion_event then coalesce(conversion_value, 0) end
        as conversion_value,
    currency,
    order_id,
    capi_external_id,
    capi_user_id,
    capi_queue_id,
    is_conversion_event as is_conversion
from classified
