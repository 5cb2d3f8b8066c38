with source as (
    select * from {{ source('everreach', 'conversation_message') }}
),

renamed as (
    select
        message_id,
        thread_id,
        platform,
        platform_message_id,
        direction,
        message_type,
        is_echo,
        is_deleted,
        status as message_status,
        messaging_type,
        message_tag,
        window_used,
        sent_at,
        delivered_at,
        read_at,
        failed_at,
        created_at
    from source
)

select * from renamed
