{{
    config(
        materialized='incremental',
        unique_key='person_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        pre_hook="{{ delete_stitched_anonymous_persons() }}",
        indexes=[
            {'columns': ['person_id'], 'unique': true},
            {'columns': ['dbt_loaded_at']},
        ],
    )
}}

-- depends_on: {{ ref('touchpoints') }}
-- One row per person: first and last touch and the path as strings (every step, and with
-- repeated consecutive steps collapsed).
with steps as (
    {% if is_incremental() %}
        {{ rows_of_affected_persons(ref('user_journeys')) }}
    {% else %}
        select * from {{ ref('user_journeys') }}
    {% endif %}
),

runs as (
    select
        steps.*,
        (touchpoint_type is distinct from lag(touchpoint_type) over (
            partition by person_id order by step_number
        )) as starts_run
    from steps
),

first_conversion as (
    select person_id, min(step_number) as step_number
    from runs
    where is_conversion
    group by person_id
)

select
    steps.person_id,
    max(steps.user_id::text)::uuid as user_id,
    count(*) as total_steps,
    count(*) filter (where steps.is_conversion) as conversions,
    min(steps.first_touch_at) as first_touch_at,
    max(steps.last_touch_at) as last_touch_at,
    min(steps.touchpoint_type) filter (where steps.is_first_step) as first_touchpoint_type,
    min(steps.touchpoint_type) filter (where steps.is_last_step) as last_touchpoint_type,
    string_agg(steps.touchpoint_type, ' > ' order by steps.step_number) as path,
    string_agg(steps.touchpoint_type, ' > ' order by steps.step_number)
    filter (where steps.starts_run) as path_collapsed,
    string_agg(steps.touchpoint_type, ' > ' order by steps.step_number)
    filter (where steps.step_number <= first_conversion.step_number) as path_to_first_conversion,
    max(steps.dbt_loaded_at) as dbt_loaded_at
from runs as steps
left join first_conversion on first_conversion.person_id = steps.person_id
group by steps.person_id
