{{
    config(
        materialized='incremental',
        unique_key='conversion_event_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        pre_hook="{{ delete_rows_replaced_since_last_load(rewritten_conversions=true) }}",
        indexes=[
            {'columns': ['conversion_event_id', 'attribution_model', 'touch_number'], 'unique': true},
            {'columns': ['person_id']},
            {'columns': ['campaign_id']},
            {'columns': ['touch_event_id']},
            {'columns': ['dbt_loaded_at']},
            {'columns': ['converted_at']},
        ],
    )
}}

-- depends_on: {{ ref('int_touchpoints_identified') }}
{%- set lookback_days = var('attribution_lookback_days') -%}
{%- set half_life_days = var('time_decay_half_life_days') -%}

-- For every conversion and each model, the credit of each touch inside the lookback window.
-- Credits of one conversion sum to exactly 1 per model: the last touch takes the remainder
-- of the rounded shares. A conversion with no touch in the window goes to the explicit
-- `Unattributed` bucket (touch_number 0, credit 1), so attributed + unattributed = totals.
-- Incremental per conversion: a conversion's credits depend only on its own row and its
-- person's touches in the lookback window before it, so of a person with touchpoints written
-- since the last load only the conversions at or after the earliest change are recomputed
-- (the earliest of the rewritten rows' new times and, for a rewritten touch, its old time).
with
{% if is_incremental() %}
    changed as (
        select * from {{ ref('int_touchpoints_identified') }}
        where dbt_loaded_at > {{ last_touchpoints_load() }}
    ),

    changed_from as (
        select
            person_id,
            min(changed_at) as changed_at
        from (
            select person_id, occurred_at as changed_at from changed
            union all
            -- a rewritten touch may have moved in time: conversions after its old time too
            select stored.person_id, stored.touched_at
            from changed
            inner join {{ this }} as stored on stored.touch_event_id = changed.event_id
            union all
            -- an anonymous identity stitched to a user: all it has left (its rows were deleted)
            select anonymous_id, '-infinity'::timestamptz
            from changed
            where anonymous_id is not null and person_id <> anonymous_id
        ) as changes
        group by person_id
    ),

    touchpoints as (
        select
            person_touchpoints.*,
            changed_from.changed_at as recompute_from,
            -- the person's latest change: the next incremental run's cutoff is read from it
            max(person_touchpoints.dbt_loaded_at) over (partition by changed_from.person_id)
                as person_loaded_at
        from changed_from
        cross join lateral (
            select * from {{ ref('int_touchpoints_identified') }} as candidate
            where
                candidate.person_id = changed_from.person_id
                and candidate.occurred_at >= changed_from.changed_at - interval '{{ lookback_days }} days'
        ) as person_touchpoints
    ),
{% else %}
    touchpoints as (
        select
            *,
            '-infinity'::timestamptz as recompute_from,
            max(dbt_loaded_at) over (partition by person_id) as person_loaded_at
        from {{ ref('int_touchpoints_identified') }}
    ),
{% endif %}

conversions as (
    select
        event_id as conversion_event_id,
        person_id,
        user_id,
        event_type as conversion_type,
        occurred_at as converted_at,
        coalesce(conversion_value, 0) as conversion_value,
        currency,
        person_loaded_at
    from touchpoints
    where is_conversion and occurred_at >= recompute_from
),

touches as (
    select
        conversions.conversion_event_id,
        touchpoints.event_id as touch_event_id,
        touchpoints.touchpoint_type,
        touchpoints.event_type as touch_event_type,
        touchpoints.campaign_id,
        touchpoints.occurred_at as touched_at,
        row_number() over w_touch as touch_number,
        count(*) over (partition by conversions.conversion_event_id) as touch_count,
        -- time decay: weight halves every half-life before the conversion
        power(
            0.5::float8, extract(epoch from conversions.converted_at - touchpoints.occurred_at)
            / ({{ half_life_days }} * 86400.0)
        ) as decay_weight
    from conversions
    inner join touchpoints
        on
            touchpoints.person_id = conversions.person_id
            and touchpoints.touchpoint_type <> 'Conversion'
            and touchpoints.occurred_at < conversions.converted_at
            and touchpoints.occurred_at >= conversions.converted_at - interval '{{ lookback_days }} days'
    window w_touch as (
        partition by conversions.conversion_event_id
        order by touchpoints.occurred_at, touchpoints.event_id
    )
),

touched_conversions as (
    select distinct conversion_event_id from touches
),

models as (
    select unnest(array['first_touch', 'last_touch', 'linear', 'position_based', 'time_decay'])
        as attribution_model
),

shares as (
    select
        touches.*,
        models.attribution_model,
        round(case models.attribution_model
            when 'first_touch' then case when touch_number = 1 then 1 else 0 end
            when 'last_touch' then case when touch_number = touch_count then 1 else 0 end
            when 'linear' then 1.0 / touch_count
            when 'position_based'
                then
                    case
                        when touch_count = 1 then 1
                        when touch_count = 2 then 0.5
                        when touch_number = 1 or touch_number = touch_count then 0.4
                        else 0.2 / (touch_count - 2)
                    end
            when 'time_decay' then (decay_weight / sum(decay_weight) over (
                partition by conversion_event_id, models.attribution_model
            ))::numeric
        end, 12) as rounded_share
    from touches
    cross join models
),

credited as (
    select
        shares.*,
        case
            when touch_number = touch_count
                then
                    1 - coalesce(sum(rounded_share) over (
                        partition by conversion_event_id, attribution_model
                        order by touch_number rows between unbounded preceding and 1 preceding
                    ), 0)
            else rounded_share
        end as credit
    from shares
),

attributed as (
    select
        conversions.conversion_event_id,
        conversions.person_id,
        conversions.user_id,
        conversions.conversion_type,
        conversions.converted_at,
        conversions.conversion_value,
        conversions.currency,
        credited.attribution_model,
        credited.touch_number,
        credited.touch_count,
        credited.touch_event_id,
        credited.touch_event_type,
        credited.touchpoint_type,
        credited.campaign_id,
        credited.touched_at,
        credited.credit,
        conversions.person_loaded_at
    from conversions
    inner join credited on credited.conversion_event_id = conversions.conversion_event_id
    -- zero-credit rows (e.g. middle touches under first/last touch) say nothing
    where credited.credit <> 0
),

unattributed as (
    select
        conversions.conversion_event_id,
        conversions.person_id,
        conversions.user_id,
        conversions.conversion_type,
        conversions.converted_at,
        conversions.conversion_value,
        conversions.currency,
        models.attribution_model,
        0::bigint as touch_number,
        0::bigint as touch_count,
        null::bigint as touch_event_id,
        null::text as touch_event_type,
        'Unattributed'::text as touchpoint_type,
        null::uuid as campaign_id,
        null::timestamptz as touched_at,
        1::numeric as credit,
        conversions.person_loaded_at
    from conversions
    cross join models
    left join touched_conversions
        on touched_conversions.conversion_event_id = conversions.conversion_event_id
    where touched_conversions.conversion_event_id is null
),

unioned as (
    select * from attributed
    union all
    select * from unattributed
)

select
    conversion_event_id,
    attribution_model,
    touch_number,
    person_id,
    user_id,
    conversion_type,
    converted_at,
    touch_count,
    touch_event_id,
    touch_event_type,
    touchpoint_type,
    campaign_id,
    touched_at,
    touchpoint_type = 'Unattributed' as is_unattributed,
    credit::numeric(20, 12) as credited_conversions,
    credit * conversion_value as credited_revenue,
    conversion_value,
    currency,
    person_loaded_at as dbt_loaded_at
from unioned
