{{
    config(
        materialized='incremental',
        incremental_strategy='person_steps',
        on_schema_change='sync_all_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        pre_hook="{{ delete_rows_replaced_since_last_load() }}",
        indexes=[
            {'columns': ['person_id', 'step_number'], 'unique': true},
            {'columns': ['event_id'], 'unique': true},
            {'columns': ['dbt_loaded_at']},
        ],
    )
}}

-- depends_on: {{ ref('int_touchpoints_identified') }}
-- Each person's ordered steps, one row per touchpoint: the stored part of `user_journeys`
-- (which adds the columns that change with every new step: last touch, is_last_step).
-- Incremental per person, on the touchpoints written since the last load:
--   appended  every new touchpoint comes after the person's last stored step (the daily
--             case): only the new steps are written, numbered on from the stored last step;
--   rebuilt   a new touchpoint lands at or before the last stored step (a late event), a
--             stored step was itself rewritten (content, or moved to another person): every
--             step of the person is recomputed from their touchpoints.
-- The `person_steps` strategy (macros/incremental_strategies.sql) then deletes the stored rows
-- of persons whose batch starts at step 1 and of every event in the batch, and inserts. A step
-- whose touchpoint moved from another person names that person (`moved_from_person_id`): one
-- left without steps has no rows here any more, and `user_paths` drops their row by it.
with
{% if is_incremental() %}
    {%- set last_load = last_touchpoints_load() %}
    -- (Postgres believes `changed` holds about one row: the whole table shares the full build's
    -- load time, so no statistics describe a day's rows. A join between two sets derived from
    -- it would run as a nested loop over tens of thousands of rows on each side, so every
    -- lookup here is an index probe per row and every per-person decision a window function.)
    changed as (
        select * from {{ ref('int_touchpoints_identified') }}
        where dbt_loaded_at > {{ last_load }}
    ),

    -- per new touchpoint: the step it was stored as (it was rewritten) and its person's last
    -- stored step, one probe each of the event_id and (person_id, step_number) indexes
    probed as (
        select
            changed.person_id,
            changed.user_id,
            changed.event_id,
            changed.touchpoint_type,
            changed.event_type,
            changed.occurred_at,
            changed.campaign_id,
            changed.is_conversion,
            changed.dbt_loaded_at,
            stored.person_id as stored_person_id,
            coalesce(last_step.step_number, 0) as last_step_number,
            last_step.occurred_at as last_occurred_at,
            last_step.event_id as last_event_id,
            last_step.first_touch_at as stored_first_touch_at,
            last_step.user_id as stored_user_id
        from changed
        left join lateral (
            select loaded.person_id from {{ this }} as loaded
            where loaded.event_id = changed.event_id
            limit 1
        ) as stored on true
        left join lateral (
            select
                loaded.step_number, loaded.occurred_at, loaded.event_id, loaded.first_touch_at,
                loaded.user_id
            from {{ this }} as loaded
            where loaded.person_id = changed.person_id
            order by loaded.step_number desc
            limit 1
        ) as last_step on true
    ),

    -- A person is recomputed when one of their touchpoints was already stored (rewritten) or
    -- belongs at or before their last stored step (a late event), and when a stored step moved
    -- away from them (a marker row carries that person).
    candidates as (
        select
            person_id,
            user_id,
            event_id,
            touchpoint_type,
            event_type,
            occurred_at,
            campaign_id,
            is_conversion,
            dbt_loaded_at,
            last_step_number,
            last_occurred_at,
            stored_first_touch_at,
            stored_user_id,
            false as is_marker,
            coalesce(
                stored_person_id is not null
                or (occurred_at, event_id) < (last_occurred_at, last_event_id),
                false
            ) as forces_recompute
        from probed
        union all
        select
            stored_person_id as person_id,
            null as user_id,
            null as event_id,
            null as touchpoint_type,
            null as event_type,
            null as occurred_at,
            null as campaign_id,
            null as is_conversion,
            null as dbt_loaded_at,
            null as last_step_number,
            null as last_occurred_at,
            null as stored_first_touch_at,
            null as stored_user_id,
            true as is_marker,
            true as forces_recompute
        from probed
        where stored_person_id is not null and stored_person_id <> person_id
    ),

    flagged as (
        select
            *,
            bool_or(forces_recompute) over (partition by person_id) as recompute
        from candidates
    ),

    rebuilt as (
        select
            person_touchpoints.person_id,
            person_touchpoints.user_id,
            person_touchpoints.event_id,
            person_touchpoints.touchpoint_type,
            person_touchpoints.event_type,
            person_touchpoints.occurred_at,
            person_touchpoints.campaign_id,
            person_touchpoints.is_conversion,
            person_touchpoints.dbt_loaded_at,
            0 as last_step_number,
            null::timestamptz as last_occurred_at,
            null::timestamptz as stored_first_touch_at,
            null::uuid as stored_user_id,
            -- a touchpoint of this run stored as another person's step moved from that person
            case when person_touchpoints.dbt_loaded_at > {{ last_load }} then (
                select loaded.person_id from {{ this }} as loaded
                where
                    loaded.event_id = person_touchpoints.event_id
                    and loaded.person_id <> person_touchpoints.person_id
            ) end as moved_from_person_id
        from (select distinct person_id from flagged where recompute) as rebuilt_persons
        cross join lateral (
            select * from {{ ref('int_touchpoints_identified') }} as candidate
            where candidate.person_id = rebuilt_persons.person_id
        ) as person_touchpoints
    ),

    touchpoints as (
        select * from rebuilt
        union all
        -- appended steps: the person's stored steps stay as they are (never moved: an already
        -- stored touchpoint makes its person recomputed)
        select
            person_id,
            user_id,
            event_id,
            touchpoint_type,
            event_type,
            occurred_at,
            campaign_id,
            is_conversion,
            dbt_loaded_at,
            last_step_number,
            last_occurred_at,
            stored_first_touch_at,
            stored_user_id,
            null::uuid as moved_from_person_id
        from flagged
        where not recompute
    ),
{% else %}
    touchpoints as (
        select
            person_id,
            user_id,
            event_id,
            touchpoint_type,
            event_type,
            occurred_at,
            campaign_id,
            is_conversion,
            dbt_loaded_at,
            0 as last_step_number,
            null::timestamptz as last_occurred_at,
            null::timestamptz as stored_first_touch_at,
            null::uuid as stored_user_id,
            null::uuid as moved_from_person_id
        from {{ ref('int_touchpoints_identified') }}
    ),
{% endif %}

ordered as (
    select
        person_id,
        -- a person's user id is the same on every step once any step is stitched
        coalesce(max(user_id::text) over (partition by person_id)::uuid, stored_user_id) as user_id,
        event_id,
        last_step_number
        + row_number() over (partition by person_id order by occurred_at, event_id) as step_number,
        touchpoint_type,
        event_type,
        occurred_at,
        extract(epoch from occurred_at - coalesce(
            lag(occurred_at) over (partition by person_id order by occurred_at, event_id),
            last_occurred_at
        ))::numeric(18, 3) as seconds_since_previous_step,
        coalesce(stored_first_touch_at, min(occurred_at) over (partition by person_id))
            as first_touch_at,
        campaign_id,
        is_conversion,
        max(dbt_loaded_at) over (partition by person_id) as dbt_loaded_at,
        moved_from_person_id
    from touchpoints
)

select
    person_id,
    user_id,
    event_id,
    step_number,
    touchpoint_type,
    event_type,
    occurred_at,
    seconds_since_previous_step,
    first_touch_at,
    step_number = 1 as is_first_step,
    campaign_id,
    is_conversion,
    dbt_loaded_at,
    moved_from_person_id
from ordered
