-- Attributed ROAS per campaign and attribution model (lifetime), beside Meta's own reported
-- conversions and ROAS for the same campaign. Spend comes from campaign-level rows only.
with spend as (
    select
        campaign_id,
        min(currency) as currency,
        sum(spend) as spend,
        sum(conversions) as meta_conversions,
        sum(conversion_value) as meta_conversion_value
    from {{ ref('ad_performance_daily') }}
    where report_level = 'campaign'
    group by campaign_id
),

credits as (
    select
        campaign_id,
        attribution_model,
        sum(credited_conversions) as attributed_conversions,
        sum(credited_revenue) as attributed_revenue
    from {{ ref('attribution_touch_credits') }}
    where campaign_id is not null
    group by campaign_id, attribution_model
),

models as (
    select unnest(array['first_touch', 'last_touch', 'linear', 'position_based', 'time_decay'])
        as attribution_model
),

campaign_models as (
    select campaign_id, attribution_model from spend cross join models
    union
    select campaign_id, attribution_model from credits
)

select
    campaign_models.campaign_id,
    campaigns.campaign_name,
    campaigns.meta_campaign_id,
    campaign_models.attribution_model,
    spend.currency,
    coalesce(spend.spend, 0)::numeric(18, 4) as spend,
    coalesce(credits.attributed_conversions, 0)::numeric(20, 12) as attributed_conversions,
    coalesce(credits.attributed_revenue, 0)::numeric(24, 6) as attributed_revenue,
    (coalesce(credits.attributed_revenue, 0) / nullif(spend.spend, 0))::numeric(18, 6) as attributed_roas,
    coalesce(spend.meta_conversions, 0)::numeric(18, 4) as meta_reported_conversions,
    coalesce(spend.meta_conversion_value, 0)::numeric(18, 4) as meta_reported_conversion_value,
    (spend.meta_conversion_value / nullif(spend.spend, 0))::numeric(18, 6) as meta_reported_roas
from campaign_models
left join spend on spend.campaign_id = campaign_models.campaign_id
left join credits
    on
        credits.campaign_id = campaign_models.campaign_id
        and credits.attribution_model = campaign_models.attribution_model
left join {{ ref('stg_everreach__campaigns') }} as campaigns
    on campaigns.campaign_id = campaign_models.campaign_id
