{{
    config(
        materialized='incremental',
        unique_key='person_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="{{ analyze_if_without_statistics() }}",
        pre_hook="{{ delete_stitched_anonymous_persons() }}",
        indexes=[
            {'columns': ['person_id', 'step_number'], 'unique': true},
            {'columns': ['dbt_loaded_at']},
        ],
    )
}}

-- depends_on: {{ ref('touchpoints') }}
-- Each person's ordered path: one row per touchpoint with its step number and the time since
-- the previous step. Incremental per person: every person with touchpoints written since the
-- last load gets a renumbered path. Its steps are the stored ones plus the new touchpoints
-- (the stored rows sit together on disk, the person's touchpoints do not), so a late event
-- that lands between stored steps renumbers the path all the same. Only a person one of whose
-- stored steps was itself rewritten (identity stitched, content changed) or who was stitched
-- away is rebuilt from all of their touchpoints.
with
{% if is_incremental() %}
    changed as (
        select * from {{ ref('touchpoints') }}
        where dbt_loaded_at > {{ last_touchpoints_load() }}
    ),

    affected as (
        select distinct affected.person_id
        from changed
        cross join lateral unnest(array[changed.person_id, changed.anonymous_id]) as affected (person_id)
        where affected.person_id is not null
    ),

    -- the affected persons' stored steps, fetched through the (person_id, step_number) index
    stored as (
        select person_steps.*
        from affected
        cross join lateral (
            select * from {{ this }} as loaded where loaded.person_id = affected.person_id
        ) as person_steps
    ),

    rebuilt_persons as (
        -- a stored step was rewritten (or moved to another person)
        select stored.person_id
        from stored
        inner join changed on changed.event_id = stored.event_id
        union
        -- an anonymous identity whose contact was stitched to a user (its rows were deleted)
        select anonymous_id
        from changed
        where anonymous_id is not null and person_id <> anonymous_id
    ),

    touchpoints as (
        select
            rebuilt.person_id,
            rebuilt.user_id,
            rebuilt.event_id,
            rebuilt.touchpoint_type,
            rebuilt.event_type,
            rebuilt.occurred_at,
            rebuilt.campaign_id,
            rebuilt.is_conversion,
            rebuilt.dbt_loaded_at
        from rebuilt_persons
        cross join
            lateral (
                select * from {{ ref('touchpoints') }} as candidate
                where candidate.person_id = rebuilt_persons.person_id
            ) as rebuilt
        union all
        -- stored steps carry the person's user id and newest load; max() over them stays exact
        select
            stored.person_id,
            stored.user_id,
            stored.event_id,
            stored.touchpoint_type,
            stored.event_type,
            stored.occurred_at,
            stored.campaign_id,
            stored.is_conversion,
            stored.dbt_loaded_at
        from stored
        where
            not exists (
                select 1 from rebuilt_persons where rebuilt_persons.person_id = stored.person_id
            )
        union all
        select
            changed.person_id,
            changed.user_id,
            changed.event_id,
            changed.touchpoint_type,
            changed.event_type,
            changed.occurred_at,
            changed.campaign_id,
            changed.is_conversion,
            changed.dbt_loaded_at
        from changed
        where not exists (
            select 1 from rebuilt_persons where rebuilt_persons.person_id = changed.person_id
        )
    ),
{% else %}
    touchpoints as (
        select * from {{ ref('touchpoints') }}
    ),
{% endif %}

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
