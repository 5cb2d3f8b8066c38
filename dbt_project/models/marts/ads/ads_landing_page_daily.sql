-- Daily performance per landing page and UTM combination: the ad-level rows of
-- ad_performance_daily summed over the ads whose creative lands there. Meta's dynamic
-- parameters in a UTM value are filled in per ad, as Meta does per click ({{ '{{' }}campaign.name}},
-- {{ '{{' }}ad.name}} and the ids). Reach is left out: it does not add up across ads. Ads without a
-- known landing URL are one row with null landing columns, so every account-day adds up.
with performance as (
    select * from {{ ref('ad_performance_daily') }}
    where report_level = 'ad'
),

ads as (
    select meta_ad_id, meta_adset_id, meta_campaign_id, ad_name, creative_id
    from {{ ref('stg_meta__ads') }}
),

campaigns as (
    select meta_campaign_id, campaign_name from {{ ref('stg_everreach__campaigns') }}
    where meta_campaign_id is not null
),

creatives as (
    select * from {{ ref('stg_meta__ad_creatives') }}
),

landings as (
    select
        ads.meta_ad_id,
        creatives.landing_page,
        {{ fill_dynamic_parameters('creatives.utm_source') }} as utm_source,
        {{ fill_dynamic_parameters('creatives.utm_medium') }} as utm_medium,
        {{ fill_dynamic_parameters('creatives.utm_campaign') }} as utm_campaign,
        {{ fill_dynamic_parameters('creatives.utm_content') }} as utm_content,
        {{ fill_dynamic_parameters('creatives.utm_term') }} as utm_term
    from ads
    inner join creatives on ads.creative_id = creatives.creative_id
    left join campaigns on ads.meta_campaign_id = campaigns.meta_campaign_id
)

select
    performance.report_date,
    performance.ad_account_id,
    landings.landing_page,
    landings.utm_source,
    landings.utm_medium,
    landings.utm_campaign,
    landings.utm_content,
    landings.utm_term,
    performance.currency,
    count(distinct performance.meta_ad_id) as ads,
    sum(performance.spend) as spend,
    sum(performance.impressions) as impressions,
    sum(performance.clicks) as clicks,
    sum(performance.link_clicks) as link_clicks,
    sum(performance.conversions) as conversions,
    sum(performance.conversion_value) as conversion_value
from performance
left join landings on performance.meta_ad_id = landings.meta_ad_id
group by 1, 2, 3, 4, 5, 6, 7, 8, 9
