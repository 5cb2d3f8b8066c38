-- Meta ad → Meta campaign → EverReach campaign. Ad objects win; ad-level insight rows fill in
-- ads the object sync never saw (deleted before it ran, still carrying spend).
with ad_objects as (
    select meta_ad_id, meta_adset_id, meta_campaign_id
    from {{ ref('stg_meta__ads') }}
),

insight_ads as (
    select distinct on (meta_ad_id)
        meta_ad_id,
        meta_adset_id,
        meta_campaign_id
    from {{ ref('stg_meta__ad_performance') }}
    where report_level = 'ad' and meta_ad_id is not null and meta_campaign_id is not null
    order by meta_ad_id, report_date desc
),

unioned as (
    select * from ad_objects
    union all
    select insight_ads.*
    from insight_ads
    where not exists (
        select 1 from ad_objects where ad_objects.meta_ad_id = insight_ads.meta_ad_id
    )
)

select
    unioned.meta_ad_id,
    unioned.meta_adset_id,
    unioned.meta_campaign_id,
    campaigns.campaign_id
from unioned
left join {{ ref('stg_everreach__campaigns') }} as campaigns
    on campaigns.meta_campaign_id = unioned.meta_campaign_id
