with source as (
    select * from {{ source('everreach', 'social_media_post') }}
),

renamed as (
    select
        platform,
        post_id,
        account_id,
        media_type,
        media_product_type,
        permalink,
        posted_at,
        insights_skipped_reason
    from source
)

select * from renamed
