-- Per attribution model: total conversions and revenue, and how they split between touches
-- with a campaign, touches without one, and the unattributed bucket. Reconciles to totals.
with credits as (
    select * from {{ ref('attribution_touch_credits') }}
)

select
    attribution_model,
    count(distinct conversion_event_id) as total_conversions,
    sum(credited_conversions) filter (where not is_unattributed and campaign_id is not null)
        as campaign_attributed_conversions,
    coalesce(sum(credited_conversions) filter (where not is_unattributed and campaign_id is null), 0)
        as other_attributed_conversions,
    coalesce(sum(credited_conversions) filter (where is_unattributed), 0) as unattributed_conversions,
    sum(credited_conversions) as credited_conversions,
    coalesce(sum(credited_revenue) filter (where not is_unattributed), 0) as attributed_revenue,
    coalesce(sum(credited_revenue) filter (where is_unattributed), 0) as unattributed_revenue,
    sum(credited_revenue) as credited_revenue
from credits
group by attribution_model
