with source as (
    select * from {{ source('everreach', 'campaign') }}
),

renamed as (
    select
        campaign_id,
        name as campaign_name,
        meta_campaign_id,
        meta_ad_account_id,
        source as campaign_source,
        created_at,
        updated_at
    from source
)

select * from renamed
