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
        value,
        currency,
        is_test,
        status as delivery_status,
        source as intake_source,
        source_event_ref,
        created_at
    from source
)

select * from renamed
