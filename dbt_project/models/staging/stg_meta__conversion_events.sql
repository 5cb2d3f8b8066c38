with source as (
    select * from {{ source('everreach', 'meta_conversion_event') }}
),

renamed as (
    select
        id as conversion_event_id,
        pixel_id,
        event_name,
        event_id,
        event_time,
        action_source,
        user_id,
        -- external_id may be one value or an array, hashed or in clear
        case jsonb_typeof(user_data -> 'external_id')
            when 'array' then user_data -> 'external_id' ->> 0
            when 'string' then user_data ->> 'external_id'
        end as external_id,
        -- which match keys went to Meta (the stored user_data is what was sent: hashed where
        -- Meta's rules say so, never clear text); presence only, values are not read
        user_data ? 'em' as has_email,
        user_data ? 'ph' as has_phone,
        user_data ? 'external_id' as has_external_id,
        user_data ? 'fbp' as has_fbp,
        user_data ? 'fbc' as has_fbc,
        user_data ? 'client_ip_address' and user_data ? 'client_user_agent'
            as has_client_ip_and_user_agent,
        value,
        currency,
        is_test,
        status as delivery_status,
        source as intake_source,
        source_event_ref,
        created_at,
        last_attempt_at,
        sent_at
    from source
)

select * from renamed
