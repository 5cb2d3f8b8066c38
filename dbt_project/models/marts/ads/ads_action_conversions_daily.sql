-- Daily ad-level actions by type and by what they are tied to (the pixel for website actions
-- Meta measures itself, the Page for leads), with their values per attribution window.
-- Meta gives no target for web conversions: action_target_id is null there. The conversions
-- column adds up, per ad and day, to ad_performance_daily's conversions.
with actions as (
    select * from {{ ref('stg_meta__ad_insights_actions') }}
),

ads as (
    select * from {{ ref('int_ads_mapped_to_campaigns') }}
)

select
    actions.report_date,
    actions.ad_account_id,
    ads.campaign_id,
    actions.meta_campaign_id,
    actions.meta_adset_id,
    actions.meta_ad_id,
    actions.action_type,
    actions.action_target_id,
    actions.action_destination,
    actions.currency,
    actions.actions,
    actions.actions_1d_click,
    actions.actions_7d_click,
    actions.actions_28d_click,
    actions.actions_1d_view,
    actions.action_value,
    actions.action_value_7d_click,
    actions.action_value_1d_view,
    actions.is_conversion,
    actions.conversions,
    actions.conversion_value,
    actions.fetched_at
from actions
left join ads on actions.meta_ad_id = ads.meta_ad_id
