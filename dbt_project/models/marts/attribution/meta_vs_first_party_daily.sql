-- What Meta sees vs what happened, per campaign, day and attribution model: Meta's reported
-- conversions beside the first-party conversions credited to the campaign, how many of those
-- reached Meta through the Conversions API and were accepted (CAPI coverage), and which match
-- keys the delivered events carried (the inputs of Meta's Event Match Quality), all weighted by
-- the campaign's credit under the model. Meta's figures are on the ad account's report date
-- (conversions counted on the day of the ad's click or view); first-party ones on the
-- conversion's UTC date.
with meta_side as (
    select
        campaign_id,
        report_date,
        min(currency) as currency,
        sum(spend) as spend,
        sum(conversions) as meta_conversions,
        sum(conversion_value) as meta_conversion_value
    from {{ ref('ad_performance_daily') }}
    where report_level = 'campaign' and campaign_id is not null
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

credits as (
    select
        credits.campaign_id,
        credits.attribution_model,
        (credits.converted_at at time zone 'UTC')::date as report_date,
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
    from {{ ref('attribution_touch_credits') }} as credits
    left join app_deliveries as app on app.conversion_event_id = credits.conversion_event_id
    -- a probe of the classified event only for conversions that are CAPI events themselves
    left join lateral (
        select
            queue.conversion_event_id,
            queue.has_email,
            queue.has_phone,
            queue.has_external_id,
            queue.has_fbp,
            queue.has_fbc,
            queue.has_client_ip_and_user_agent
        from {{ ref('int_user_events_classified') }} as classified
        inner join {{ ref('stg_meta__conversion_events') }} as queue
            on queue.conversion_event_id = classified.capi_queue_id
        where
            credits.conversion_type like 'meta\_conversion\_%'
            and classified.event_id = credits.conversion_event_id
    ) as direct on true
    where credits.campaign_id is not null
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
    from credits
    group by campaign_id, attribution_model, report_date
),

models as (
    select unnest(array['first_touch', 'last_touch', 'linear', 'position_based', 'time_decay'])
        as attribution_model
),

campaign_days as (
    select meta_side.campaign_id, meta_side.report_date, models.attribution_model
    from meta_side cross join models
    union
    select campaign_id, report_date, attribution_model from first_party
)

select
    campaign_days.report_date,
    campaign_days.campaign_id,
    campaigns.campaign_name,
    campaigns.meta_campaign_id,
    campaign_days.attribution_model,
    meta_side.currency,
    coalesce(meta_side.spend, 0)::numeric(18, 4) as spend,
    coalesce(meta_side.meta_conversions, 0)::numeric(18, 4) as meta_reported_conversions,
    coalesce(meta_side.meta_conversion_value, 0)::numeric(18, 4) as meta_reported_conversion_value,
    coalesce(first_party.attributed_conversions, 0)::numeric(20, 12) as attributed_conversions,
    coalesce(first_party.attributed_revenue, 0)::numeric(24, 6) as attributed_revenue,
    coalesce(first_party.delivered_conversions, 0)::numeric(20, 12) as capi_delivered_conversions,
    {{ share('coalesce(first_party.delivered_conversions, 0)', 'first_party.attributed_conversions') }}
        as capi_coverage,
    {{ share('coalesce(first_party.with_email, 0)', 'first_party.delivered_conversions') }} as match_key_email_share,
    {{ share('coalesce(first_party.with_phone, 0)', 'first_party.delivered_conversions') }} as match_key_phone_share,
    {{ share('coalesce(first_party.with_external_id, 0)', 'first_party.delivered_conversions') }} as match_key_external_id_share,
    {{ share('coalesce(first_party.with_fbp, 0)', 'first_party.delivered_conversions') }} as match_key_fbp_share,
    {{ share('coalesce(first_party.with_fbc, 0)', 'first_party.delivered_conversions') }} as match_key_fbc_share,
    {{ share('coalesce(first_party.with_client_ip_and_user_agent, 0)', 'first_party.delivered_conversions') }} as match_key_ip_user_agent_share
from campaign_days
left join meta_side
    on
        meta_side.campaign_id = campaign_days.campaign_id
        and meta_side.report_date = campaign_days.report_date
left join first_party
    on
        first_party.campaign_id = campaign_days.campaign_id
        and first_party.attribution_model = campaign_days.attribution_model
        and first_party.report_date = campaign_days.report_date
left join {{ ref('stg_everreach__campaigns') }} as campaigns
    on campaigns.campaign_id = campaign_days.campaign_id
