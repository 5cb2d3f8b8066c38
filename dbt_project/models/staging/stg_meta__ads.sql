with source as (
    select * from {{ source('everreach', 'meta_ad') }}
),

renamed as (
    select
        ad_id as meta_ad_id,
        adset_id as meta_adset_id,
        campaign_id as meta_campaign_id,
        ad_account_id,
        name as ad_name,
        effective_status,
        creative_id,
        synced_at
    from source
)

select * from renamed
