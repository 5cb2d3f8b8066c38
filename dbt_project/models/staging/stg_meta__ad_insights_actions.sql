with source as (
    select * from {{ source('everreach', 'ad_insights_actions') }}
),

renamed as (
    select
        date as report_date,
        ad_account_id,
        ad_id as meta_ad_id,
        adset_id as meta_adset_id,
        campaign_id as meta_campaign_id,
        action_type,
        -- the raw table keeps '' where Meta gives no target (a key column cannot be null)
        nullif(action_target_id, '') as action_target_id,
        nullif(action_destination, '') as action_destination,
        account_currency as currency,
        value as actions,
        value_1d_click as actions_1d_click,
        value_7d_click as actions_7d_click,
        value_28d_click as actions_28d_click,
        value_1d_view as actions_1d_view,
        money as action_value,
        money_1d_click as action_value_1d_click,
        money_7d_click as action_value_7d_click,
        money_28d_click as action_value_28d_click,
        money_1d_view as action_value_1d_view,
        is_conversion,
        conversions,
        conversion_value,
        fetched_at
    from source
)

select * from renamed
