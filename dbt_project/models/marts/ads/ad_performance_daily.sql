{{
    config(
        materialized='incremental',
        unique_key=['ad_account_id', 'report_level', 'entity_id', 'report_date'],
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        indexes=[
            {'columns': ['ad_account_id', 'report_level', 'entity_id', 'report_date'], 'unique': true},
            {'columns': ['fetched_at']},
            {'columns': ['campaign_id', 'report_date']},
        ],
    )
}}

-- Daily ads facts at account / campaign / adset / ad grain, as Meta reported them. Reach is
-- Meta's own figure at each level: it is never summed across levels or days.
-- Incremental on `fetched_at`: the ads sync re-reads (and rewrites) a 28-day window daily.
with performance as (
    select * from {{ ref('stg_meta__ad_performance') }}
    {% if is_incremental() %}
        where fetched_at >= {{ incremental_cutoff('fetched_at') }}
    {% endif %}
)

select
    report_date,
    ad_account_id,
    report_level,
    entity_id,
    entity_name,
    -- the EverReach campaign every campaign / adset / ad row belongs to
    parent_campaign_id as campaign_id,
    meta_campaign_id,
    meta_adset_id,
    meta_ad_id,
    currency,
    spend,
    impressions,
    reach,
    clicks,
    link_clicks,
    conversions,
    conversion_value,
    fetched_at
from performance
