with source as (
    select * from {{ source('everreach', 'user_event') }}
),

renamed as (
    select
        id as event_id,
        user_id,
        etype as event_type,
        source as event_source,
        props,
        occurred_at,
        inserted_at,
        {{ safe_uuid("props ->> 'thread_id'") }} as thread_id,
        props ->> 'contact_id' as contact_id,
        props ->> 'message_id' as platform_message_id,
        props -> 'referral' as referral,
        nullif(props ->> 'meta_campaign_id', '') as meta_campaign_id,
        nullif(coalesce(
            props ->> 'meta_ad_id',
            props -> 'referral' ->> 'ad_id',
            case
                when props -> 'referral' ->> 'source_type' = 'ad'
                    then props -> 'referral' ->> 'source_id'
            end
        ), '') as meta_ad_id,
        nullif(props ->> 'utm_source', '') as utm_source,
        nullif(props ->> 'utm_medium', '') as utm_medium,
        nullif(props ->> 'utm_campaign', '') as utm_campaign,
        nullif(props ->> 'fbclid', '') as fbclid,
        nullif(coalesce(props ->> 'ctwa_clid', props -> 'referral' ->> 'ctwa_clid'), '') as ctwa_clid,
        nullif(coalesce(props ->> 'ref', props -> 'referral' ->> 'ref'), '') as referral_ref,
        {{ safe_numeric("props ->> 'value'") }} as conversion_value,
        upper(nullif(props ->> 'currency', '')) as currency,
        nullif(props ->> 'order_id', '') as order_id,
        nullif(props ->> 'event_id', '') as capi_event_id,
        nullif(props ->> 'pixel_id', '') as capi_pixel_id
    from source
)

select * from renamed
