-- Daily ad-level facts by country as Meta reported them. Reach is Meta's own figure for
-- each ad, day and breakdown value: it is never summed (people seen in two cells count in both).
with breakdown as (
    select * from {{ ref('stg_meta__ad_insights_country') }}
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
    breakdown.country,
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
