{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        pre_hook=[
            "set local work_mem = '128MB'",
            "{{ delete_days_from(reconciliation_recompute_from(), 'report_date') }}",
        ],
        indexes=[
            {'columns': ['report_date', 'campaign_id', 'attribution_model'], 'unique': true},
            {'columns': ['campaign_id', 'report_date']},
        ],
    )
}}

-- depends_on: {{ ref('int_touchpoints_identified') }}
-- What Meta sees vs what happened, per campaign, day and attribution model: Meta's reported
-- conversions beside the first-party conversions credited to the campaign, how many of those
-- reached Meta through the Conversions API and were accepted (CAPI coverage), and which match
-- keys the delivered events carried (the inputs of Meta's Event Match Quality), all weighted by
-- the campaign's credit under the model. Meta's figures are on the ad account's report date
-- (conversions counted on the day of the ad's click or view); first-party ones on the
-- conversion's UTC date. Incremental by day: a run recomputes every day from the earliest one
-- whose numbers may have changed (`reconciliation_recompute_from`: Meta's re-fetched window,
-- credits written, conversions moved or no longer conversions, deliveries), after its pre-hook
-- deleted those days; the sorts and hash aggregates stay in memory.
{%- set recompute_from = reconciliation_recompute_from() %}
with meta_side as (
    select
        campaign_id,
        report_date,
        min(currency) as currency,
        sum(spend) as spend,
        sum(conversions) as meta_conversions,
        sum(conversion_value) as meta_conversion_value
    from {{ ref('ad_performance_daily') }}
    where report_level = 'campaign' and campaign_id is not null and report_date >= {{ recompute_from }}
    group by campaign_id, report_date
),

-- one row per conversion queued from an app event (its delivery, by the queue's reference)
app_deliveries as (
    select
        source_event_ref::bigint as conversion_event_id,
        delivery_status,
        is_test,
        has_email,
        has_phone,
        has_external_id,
        has_fbp,
        has_fbc,
        has_client_ip_and_user_agent
    from {{ ref('stg_meta__conversion_events') }}
    where intake_source = 'user_event' and source_event_ref ~ '^[0-9]+$'
),

-- the queue row of a conversion that came in through the Conversions API itself: looked up
-- only for those (a probe of the classified event's unique index each), never by joining the
-- whole event table
credits as (
    select
        credits.campaign_id,
        credits.attribution_model,
        (credits.converted_at at time zone 'UTC')::date as report_date,
        credits.credited_conversions,
        credits.credited_revenue,
        credits.conversion_event_id,
        case when credits.conversion_type like 'meta\_conversion\_%' then (
            select classified.capi_queue_id
            from {{ ref('int_user_events_classified') }} as classified
            where classified.event_id = credits.conversion_event_id
        ) end as capi_queue_id
    from {{ ref('attribution_touch_credits') }} as credits
    where
        credits.campaign_id is not null
        and credits.converted_at >= {{ recompute_from }}::timestamp at time zone 'UTC'
),

delivered as (
    select
        credits.campaign_id,
        credits.attribution_model,
        credits.report_date,
        credits.credited_conversions,
        credits.credited_revenue,
        -- a conversion that came in through the Conversions API is in user_event because Meta
        -- accepted it; an app conversion counts once its queued copy was accepted
        coalesce(
            direct.conversion_event_id is not null
            or (app.delivery_status = 'sent' and not app.is_test),
            false
        ) as is_delivered,
        coalesce(direct.has_email, app.has_email, false) as has_email,
        coalesce(direct.has_phone, app.has_phone, false) as has_phone,
        coalesce(direct.has_external_id, app.has_external_id, false) as has_external_id,
        coalesce(direct.has_fbp, app.has_fbp, false) as has_fbp,
        coalesce(direct.has_fbc, app.has_fbc, false) as has_fbc,
        coalesce(direct.has_client_ip_and_user_agent, app.has_client_ip_and_user_agent, false)
            as has_client_ip_and_user_agent
    from credits
    left join app_deliveries as app on app.conversion_event_id = credits.conversion_event_id
    left join {{ ref('stg_meta__conversion_events') }} as direct
        on direct.conversion_event_id = credits.capi_queue_id
),

first_party as (
    select
        campaign_id,
        attribution_model,
        report_date,
        sum(credited_conversions) as attributed_conversions,
        sum(credited_revenue) as attributed_revenue,
        sum(credited_conversions) filter (where is_delivered) as delivered_conversions,
        sum(credited_conversions) filter (where is_delivered and has_email) as with_email,
        sum(credited_conversions) filter (where is_delivered and has_phone) as with_phone,
        sum(credited_conversions) filter (where is_delivered and has_external_id)
            as with_external_id,
        sum(credited_conversions) filter (where is_delivered and has_fbp) as with_fbp,
        sum(credited_conversions) filter (where is_delivered and has_fbc) as with_fbc,
        sum(credited_conversions) filter (where is_delivered and has_client_ip_and_user_agent)
            as with_client_ip_and_user_agent
    from delivered
    group by campaign_id, attribution_model, report_date
),

models as (
    select unnest(array['first_touch', 'last_touch', 'linear', 'position_based', 'time_decay'])
        as attribution_model
),

meta_days as (
    select
        meta_side.*,
        models.attribution_model
    from meta_side cross join models
),

-- every campaign-day Meta reported, under every model, beside every day with credits
joined as (
    select
        coalesce(meta_days.campaign_id, first_party.campaign_id) as campaign_id,
        coalesce(meta_days.report_date, first_party.report_date) as report_date,
        coalesce(meta_days.attribution_model, first_party.attribution_model) as attribution_model,
        meta_days.currency,
        meta_days.spend,
        meta_days.meta_conversions,
        meta_days.meta_conversion_value,
        first_party.attributed_conversions,
        first_party.attributed_revenue,
        first_party.delivered_conversions,
        first_party.with_email,
        first_party.with_phone,
        first_party.with_external_id,
        first_party.with_fbp,
        first_party.with_fbc,
        first_party.with_client_ip_and_user_agent
    from meta_days
    full join first_party
        on
            first_party.campaign_id = meta_days.campaign_id
            and first_party.report_date = meta_days.report_date
            and first_party.attribution_model = meta_days.attribution_model
)

select
    joined.report_date,
    joined.campaign_id,
    campaigns.campaign_name,
    campaigns.meta_campaign_id,
    joined.attribution_model,
    joined.currency,
    coalesce(joined.spend, 0)::numeric(18, 4) as spend,
    coalesce(joined.meta_conversions, 0)::numeric(18, 4) as meta_reported_conversions,
    coalesce(joined.meta_conversion_value, 0)::numeric(18, 4) as meta_reported_conversion_value,
    coalesce(joined.attributed_conversions, 0)::numeric(20, 12) as attributed_conversions,
    coalesce(joined.attributed_revenue, 0)::numeric(24, 6) as attributed_revenue,
    coalesce(joined.delivered_conversions, 0)::numeric(20, 12) as capi_delivered_conversions,
    {{ share('coalesce(joined.delivered_conversions, 0)', 'joined.attributed_conversions') }}
        as capi_coverage,
    {{ share('coalesce(joined.with_email, 0)', 'joined.delivered_conversions') }} as match_key_email_share,
    {{ share('coalesce(joined.with_phone, 0)', 'joined.delivered_conversions') }} as match_key_phone_share,
    {{ share('coalesce(joined.with_external_id, 0)', 'joined.delivered_conversions') }}
        as match_key_external_id_share,
    {{ share('coalesce(joined.with_fbp, 0)', 'joined.delivered_conversions') }} as match_key_fbp_share,
    {{ share('coalesce(joined.with_fbc, 0)', 'joined.delivered_conversions') }} as match_key_fbc_share,
    {{ share('coalesce(joined.with_client_ip_and_user_agent, 0)', 'joined.delivered_conversions') }}
        as match_key_ip_user_agent_share,
    -- when the row was written: the next run recomputes from what changed after it
    now() as dbt_loaded_at
from joined
left join {{ ref('stg_everreach__campaigns') }} as campaigns
    on campaigns.campaign_id = joined.campaign_id
