-- Daily ad-level facts by region as Meta reported them. Meta leaves web (pixel) conversions out
-- of region rows: conversions here are on-Meta actions only. Reach is never summed.
with breakdown as (
    select * from {{ ref('stg_meta__ad_insights_region') }}
),

ads as (
    select * from {{ ref('int_ads_mapped_to_campaigns') }}
)

select
    breakdown.report_date,
    breakdown.ad_account_id,
    ads.campaign_id,
    breakdown.meta_campaign_id,
    breakdown.meta_adset_id,
    breakdown.meta_ad_id,
    breakdown.region,
    breakdown.currency,
    breakdown.spend,
    breakdown.impressions,
    breakdown.reach,
    breakdown.clicks,
    breakdown.link_clicks,
    breakdown.conversions,
    breakdown.conversion_value,
    breakdown.fetched_at
from breakdown
left join ads on breakdown.meta_ad_id = ads.meta_ad_id
