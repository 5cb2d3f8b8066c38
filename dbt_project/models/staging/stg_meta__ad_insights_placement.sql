with source as (
    select * from {{ source('everreach', 'ad_insights_placement') }}
),

renamed as (
    select
        date as report_date,
        ad_account_id,
        ad_id as meta_ad_id,
        adset_id as meta_adset_id,
        campaign_id as meta_campaign_id,
        publisher_platform,
        platform_position,
        impression_device,
        account_currency as currency,
        spend,
        impressions,
        reach,
        clicks,
        link_clicks,
        conversions,
        conversion_value,
        fetched_at
    from source
)

select * from renamed
