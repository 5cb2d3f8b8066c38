-- Meta ad → Meta campaign → EverReach campaign. Ad objects win; ad-level insight rows fill in
-- ads the object sync never saw (deleted before it ran, still carrying spend).
with ad_objects as (
    select meta_ad_id, meta_adset_id, meta_campaign_id
    from {{ ref('stg_meta__ads') }}
),

-- ads known only from insights (filtered before the newest row per ad is picked: the object
-- sync knows nearly every ad, so few of a year's daily rows are left to sort)
insight_ads as (
    select distinct on (performance.meta_ad_id)
        performance.meta_ad_id,
        performance.meta_adset_id,
        performance.meta_campaign_id
    from {{ ref('stg_meta__ad_performance') }} as performance
    where
        performance.report_level = 'ad'
        and performance.meta_ad_id is not null
        and performance.meta_campaign_id is not null
        and not exists (
            select 1 from ad_objects where ad_objects.meta_ad_id = performance.meta_ad_id
        )
    order by performance.meta_ad_id, performance.report_date desc
),

unioned as (
    select * from ad_objects
    union all
    select * from insight_ads
)

select
    unioned.meta_ad_id,
    unioned.meta_adset_id,
    unioned.meta_campaign_id,
    campaigns.campaign_id
from unioned
left join {{ ref('stg_everreach__campaigns') }} as campaigns
    on campaigns.meta_campaign_id = unioned.meta_campaign_id
