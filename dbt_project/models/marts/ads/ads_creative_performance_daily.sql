-- Daily performance per ad creative: the ad-level rows of ad_performance_daily summed over the
-- ads that show the creative (several ads can share one). Reach is left out: it does not add
-- up across ads. Ads whose creative is unknown are one row with a null creative_id, so every
-- account-day adds up to ad_performance_daily.
with performance as (
    select * from {{ ref('ad_performance_daily') }}
    where report_level = 'ad'
),

ads as (
    select meta_ad_id, creative_id from {{ ref('stg_meta__ads') }}
),

creatives as (
    select * from {{ ref('stg_meta__ad_creatives') }}
),

by_creative as (
    select
        performance.report_date,
        performance.ad_account_id,
        ads.creative_id,
        performance.currency,
        count(distinct performance.meta_ad_id) as ads,
        sum(performance.spend) as spend,
        sum(performance.impressions) as impressions,
        sum(performance.clicks) as clicks,
        sum(performance.link_clicks) as link_clicks,
        sum(performance.conversions) as conversions,
        sum(performance.conversion_value) as conversion_value
    from performance
    left join ads on performance.meta_ad_id = ads.meta_ad_id
    group by 1, 2, 3, 4
)

select
    by_creative.report_date,
    by_creative.ad_account_id,
    by_creative.creative_id,
    creatives.creative_name,
    creatives.title,
    creatives.body,
    creatives.call_to_action_type,
    creatives.story_spec_type,
    creatives.landing_page,
    creatives.thumbnail_url,
    creatives.creative_status,
    by_creative.currency,
    by_creative.ads,
    by_creative.spend,
    by_creative.impressions,
    by_creative.clicks,
    by_creative.link_clicks,
    by_creative.conversions,
    by_creative.conversion_value
from by_creative
left join creatives on by_creative.creative_id = creatives.creative_id
