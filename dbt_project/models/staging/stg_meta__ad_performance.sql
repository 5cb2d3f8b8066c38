with source as (
    select * from {{ source('everreach', 'ad_performance') }}
),

renamed as (
    select
        id as ad_performance_id,
        date as report_date,
        ad_account_id,
        level as report_level,
        entity_id,
        entity_name,
        campaign_id,
        parent_campaign_id,
        meta_campaign_id,
        meta_adset_id,
        meta_ad_id,
        account_currency as currency,
        account_timezone,
        spend,
        impressions,
        reach,
        coalesce(clicks, 0) as clicks,
        coalesce(link_clicks, 0) as link_clicks,
        conversions,
        conversion_value,
        fetched_at
    from source
)

select * from renamed
