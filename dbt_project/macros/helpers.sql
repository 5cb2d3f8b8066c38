{#- Meta and app payloads carry numbers as strings (or not at all): cast only what looks like one. -#}
{% macro safe_numeric(expr) -%}
    case when ({{ expr }}) ~ '^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$' then ({{ expr }})::numeric end
{%- endmacro %}

{#- A uuid from text when it is one (m.me `ref`, props ids), else null. -#}
{% macro safe_uuid(expr) -%}
    case when ({{ expr }}) ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
         then ({{ expr }})::uuid end
{%- endmacro %}

{#- Phone numbers as WhatsApp writes wa_id: digits only with country code, no leading zeros. -#}
{% macro normalize_phone(expr) -%}
    nullif(ltrim(regexp_replace(coalesce({{ expr }}, ''), '[^0-9]', '', 'g'), '0'), '')
{%- endmacro %}

{#- A stable uuid derived from text (anonymous identities keep the same id in every build). -#}
{% macro stable_uuid(expr) -%}
    md5({{ expr }})::uuid
{%- endmacro %}

{#- The lower bound of `column` that an incremental run re-reads: the partition window's start
    (Dagster's `min_date` var) or, without one, the newest value already loaded; both minus the
    late-arrival lookback, so events written late (or re-written) are picked up again. -#}
{% macro incremental_cutoff(column) -%}
    {%- if var('min_date', '') -%}
        ('{{ var("min_date") }}'::timestamptz - interval '{{ var("late_arrival_lookback_days") }} days')
    {%- else -%}
        (select coalesce(max(loaded.{{ column }}), '-infinity'::timestamptz)
                - interval '{{ var("late_arrival_lookback_days") }} days'
         from {{ this }} as loaded)
    {%- endif -%}
{%- endmacro %}

{#- `as_of` var as a timestamp ('' = the transaction's now()). -#}
{% macro as_of() -%}
    {%- if var('as_of', '') -%}'{{ var("as_of") }}'::timestamptz{%- else -%}now(){%- endif -%}
{%- endmacro %}

{#- The `conversion_etypes` var as a Postgres text[] literal. -#}
{% macro conversion_etypes_array() -%}
    array[{%- for etype in var('conversion_etypes') -%}'{{ etype | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}]::text[]
{%- endmacro %}

{#- The newest touchpoints load the calling person-level model has already processed. -#}
{% macro last_touchpoints_load() -%}
    (select coalesce(max(loaded.dbt_loaded_at), '-infinity'::timestamptz) from {{ this }} as loaded)
{%- endmacro %}

{#- Persons whose touchpoints were (re)written since the calling model's last load (their whole
    journey / attribution is recomputed), including anonymous identities that a newly stitched
    contact left behind. Late events are already handled by `touchpoints` (which selects by
    `inserted_at`), so no lookback is needed here. -#}
{% macro affected_persons() -%}
    select distinct affected.person_id
    from {{ ref('touchpoints') }} as changed
    cross join lateral unnest(array[changed.person_id, changed.anonymous_id]) as affected (person_id)
    where changed.dbt_loaded_at > {{ last_touchpoints_load() }} and affected.person_id is not null
{%- endmacro %}

{#- All rows of `relation` that belong to the affected persons. The lateral join makes Postgres
    fetch each person's rows through the person_id index instead of scanning the whole table
    (its estimate of the affected set is far too high to choose that on its own). -#}
{% macro rows_of_affected_persons(relation) -%}
    select person_rows.*
    from ({{ affected_persons() }}) as affected
    cross join lateral (
        select * from {{ relation }} as candidate where candidate.person_id = affected.person_id
    ) as person_rows
{%- endmacro %}

{#- Pre-hook for person-keyed incremental models: drop the rows of anonymous identities that
    were stitched to a user since the last load (delete+insert alone never deletes a key that
    has no new rows). -#}
{% macro delete_stitched_anonymous_persons() -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where person_id in (
        select anonymous_id from {{ ref('touchpoints') }}
        where dbt_loaded_at > {{ last_touchpoints_load() }}
            and anonymous_id is not null and person_id <> anonymous_id
    )
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}
