with source as (
    select * from {{ source('everreach', 'social_post_insights') }}
),

renamed as (
    select
        platform,
        post_id,
        snapshot_date,
        metric,
        value as lifetime_value,
        fetched_at
    from source
)

select * from renamed
