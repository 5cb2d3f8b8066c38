{{
    config(
        materialized='incremental',
        unique_key='person_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        pre_hook="{{ delete_stitched_anonymous_persons() }}",
        indexes=[
            {'columns': ['person_id', 'step_number'], 'unique': true},
            {'columns': ['dbt_loaded_at']},
        ],
    )
}}

-- depends_on: {{ ref('touchpoints') }}
-- Each person's ordered path: one row per touchpoint with its step number and the time since
-- the previous step. Incremental per person: a late event renumbers that person's whole path.
with touchpoints as (
    {% if is_incremental() %}
        {{ rows_of_affected_persons(ref('touchpoints')) }}
    {% else %}
        select * from {{ ref('touchpoints') }}
    {% endif %}
),

ordered as (
    select
        person_id,
        user_id,
        event_id,
        row_number() over (partition by person_id order by occurred_at, event_id) as step_number,
        touchpoint_type,
        event_type,
        occurred_at,
        extract(epoch from occurred_at - lag(occurred_at) over (
            partition by person_id order by occurred_at, event_id
        ))::numeric(18, 3) as seconds_since_previous_step,
        min(occurred_at) over (partition by person_id) as first_touch_at,
        max(occurred_at) over (partition by person_id) as last_touch_at,
        count(*) over (partition by person_id) as total_steps,
        campaign_id,
        is_conversion,
        max(dbt_loaded_at) over (partition by person_id) as dbt_loaded_at
    from touchpoints
)

select
    person_id,
    -- a person's user id is the same on every step once any step is stitched
    max(user_id::text) over (partition by person_id)::uuid as user_id,
    event_id,
    step_number,
    touchpoint_type,
    event_type,
    occurred_at,
    seconds_since_previous_step,
    first_touch_at,
    last_touch_at,
    step_number = 1 as is_first_step,
    step_number = total_steps as is_last_step,
    campaign_id,
    is_conversion,
    dbt_loaded_at
from ordered
