{{
    config(
        materialized='incremental',
        unique_key='person_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        pre_hook="{{ delete_rows_replaced_since_last_load(moved_from_persons=true) }}",
        indexes=[
            {'columns': ['person_id'], 'unique': true},
            {'columns': ['dbt_loaded_at']},
        ],
    )
}}

-- depends_on: {{ ref('int_touchpoints_identified') }}
-- One row per person: first and last touch and the path as strings (every step, and with
-- repeated consecutive steps collapsed). Incremental per person, on the journey steps written
-- since the last load: a person whose new steps start at step 1 (a new or recomputed path) is
-- aggregated from all their steps; a person with steps appended to a stored path extends the
-- stored row (counts added, path strings continued) from the new steps alone. Either way the
-- stored row enters the aggregate as a "prefix" (null for a path aggregated from step 1).
with
{% if is_incremental() %}
    -- (as in int_journey_steps: Postgres believes `new_steps` holds about one row, so per-person
    -- decisions are window functions and lookups index probes, never joins between such sets)
    new_steps as (
        select
            *,
            bool_or(step_number = 1) over (partition by person_id) as recompute
        from {{ ref('int_journey_steps') }}
        where dbt_loaded_at > {{ last_touchpoints_load() }}
    ),

    steps as (
        select
            person_steps.person_id,
            person_steps.user_id,
            person_steps.event_id,
            person_steps.step_number,
            person_steps.touchpoint_type,
            person_steps.event_type,
            person_steps.occurred_at,
            person_steps.seconds_since_previous_step,
            person_steps.first_touch_at,
            person_steps.is_first_step,
            person_steps.campaign_id,
            person_steps.is_conversion,
            person_steps.dbt_loaded_at,
            null::uuid as prefix_user_id,
            0::bigint as prefix_total_steps,
            0::bigint as prefix_conversions,
            null::timestamptz as prefix_first_touch_at,
            null::timestamptz as prefix_last_touch_at,
            null::text as prefix_first_touchpoint_type,
            null::text as prefix_last_touchpoint_type,
            null::text as prefix_path,
            null::text as prefix_path_collapsed,
            null::text as prefix_path_to_first_conversion
        from (select distinct person_id from new_steps where recompute) as recomputed_persons
        cross join
            lateral (
                select * from {{ ref('int_journey_steps') }} as candidate
                where candidate.person_id = recomputed_persons.person_id
            ) as person_steps
        union all
        -- appended steps with the person's stored row, one probe of the person_id index each
        select
            new_steps.person_id,
            new_steps.user_id,
            new_steps.event_id,
            new_steps.step_number,
            new_steps.touchpoint_type,
            new_steps.event_type,
            new_steps.occurred_at,
            new_steps.seconds_since_previous_step,
            new_steps.first_touch_at,
            new_steps.is_first_step,
            new_steps.campaign_id,
            new_steps.is_conversion,
            new_steps.dbt_loaded_at,
            prefix.user_id as prefix_user_id,
            prefix.total_steps as prefix_total_steps,
            prefix.conversions as prefix_conversions,
            prefix.first_touch_at as prefix_first_touch_at,
            prefix.last_touch_at as prefix_last_touch_at,
            prefix.first_touchpoint_type as prefix_first_touchpoint_type,
            prefix.last_touchpoint_type as prefix_last_touchpoint_type,
            prefix.path as prefix_path,
            prefix.path_collapsed as prefix_path_collapsed,
            prefix.path_to_first_conversion as prefix_path_to_first_conversion
        from new_steps
        cross join
            lateral (
                select * from {{ this }} as loaded
                where loaded.person_id = new_steps.person_id
                limit 1
            ) as prefix
        where not new_steps.recompute
    ),
{% else %}
    steps as (
        select
            *,
            null::uuid as prefix_user_id,
            0::bigint as prefix_total_steps,
            0::bigint as prefix_conversions,
            null::timestamptz as prefix_first_touch_at,
            null::timestamptz as prefix_last_touch_at,
            null::text as prefix_first_touchpoint_type,
            null::text as prefix_last_touchpoint_type,
            null::text as prefix_path,
            null::text as prefix_path_collapsed,
            null::text as prefix_path_to_first_conversion
        from {{ ref('int_journey_steps') }}
    ),
{% endif %}

runs as (
    select
        steps.*,
        (touchpoint_type is distinct from coalesce(
            lag(touchpoint_type) over (partition by person_id order by step_number),
            prefix_last_touchpoint_type
        )) as starts_run,
        (lead(step_number) over (partition by person_id order by step_number) is null)
            as is_last_step,
        min(step_number) filter (where is_conversion) over (partition by person_id)
            as first_conversion_step
    from steps
)

select
    person_id,
    coalesce(max(user_id::text), min(prefix_user_id::text))::uuid as user_id,
    min(prefix_total_steps) + count(*) as total_steps,
    min(prefix_conversions) + count(*) filter (where is_conversion) as conversions,
    coalesce(min(prefix_first_touch_at), min(occurred_at)) as first_touch_at,
    greatest(min(prefix_last_touch_at), max(occurred_at)) as last_touch_at,
    coalesce(
        min(prefix_first_touchpoint_type), min(touchpoint_type) filter (where is_first_step)
    ) as first_touchpoint_type,
    min(touchpoint_type) filter (where is_last_step) as last_touchpoint_type,
    concat_ws(' > ', min(prefix_path), string_agg(touchpoint_type, ' > ' order by step_number))
        as path,
    concat_ws(
        ' > ',
        min(prefix_path_collapsed),
        string_agg(touchpoint_type, ' > ' order by step_number) filter (where starts_run)
    ) as path_collapsed,
    case
        when min(prefix_conversions) > 0 then min(prefix_path_to_first_conversion)
        when count(*) filter (where is_conversion) > 0
            then concat_ws(
                ' > ',
                min(prefix_path),
                string_agg(touchpoint_type, ' > ' order by step_number)
                filter (where step_number <= first_conversion_step)
            )
    end as path_to_first_conversion,
    max(dbt_loaded_at) as dbt_loaded_at
from runs
group by person_id
