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

{#- The partition window's start: the `min_date` var (runs by hand) or, without it, the
    EVERREACH_DBT_MIN_DATE environment variable (how Dagster passes it). Read only at run time:
    a changed env var leaves dbt's partial parse valid, where a changed `--vars` makes every
    daily run re-parse the whole project. '' = no window. -#}
{% macro window_start() -%}
    {{- return(var('min_date', '') or env_var('EVERREACH_DBT_MIN_DATE', '')) -}}
{%- endmacro %}

{#- A timestamp the database computes once, when the model is compiled, written into the SQL
    as a literal. Postgres plans `column >= <literal>` from the column's statistics; given a
    subquery, or `'...'::timestamptz - interval ...` (not constant-folded: it depends on the
    time zone), it assumes a third of the table matches and scans all of it. NULL becomes
    -infinity. -#}
{% macro timestamptz_literal(expression) -%}
    {%- if execute -%}
        {%- set value = run_query('select (' ~ expression ~ ')::text').columns[0].values()[0] -%}
        '{{ value if value is not none else "-infinity" }}'::timestamptz
    {%- else -%}
        ({{ expression }})
    {%- endif -%}
{%- endmacro %}

{#- The lower bound of `column` that an incremental run re-reads: the partition window's start
    (`window_start()`) or, without one, the newest value already loaded; both minus the
    late-arrival lookback, so events written late (or re-written) are picked up again. -#}
{% macro incremental_cutoff(column) -%}
    {%- set lookback = "interval '" ~ var('late_arrival_lookback_days') ~ " days'" -%}
    {%- if window_start() -%}
        {{ window_cutoff() }}
    {%- else -%}
        {{ timestamptz_literal("select max(" ~ column ~ ") - " ~ lookback ~ " from " ~ this) }}
    {%- endif -%}
{%- endmacro %}

{#- The partition window's start minus the late-arrival lookback, as a literal: the oldest
    write time a windowed run re-reads (call only when `window_start()` is set). -#}
{% macro window_cutoff() -%}
    {{- timestamptz_literal(
        "'" ~ window_start() ~ "'::timestamptz - interval '"
        ~ var('late_arrival_lookback_days') ~ " days'"
    ) -}}
{%- endmacro %}

{#- `as_of` var as a timestamp ('' = the transaction's now()). -#}
{% macro as_of() -%}
    {%- if var('as_of', '') -%}'{{ var("as_of") }}'::timestamptz{%- else -%}now(){%- endif -%}
{%- endmacro %}

{#- The `conversion_etypes` var as a Postgres text[] literal. -#}
{% macro conversion_etypes_array() -%}
    array[{%- for etype in var('conversion_etypes') -%}'{{ etype | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}]::text[]
{%- endmacro %}

{#- The newest touchpoints load the calling person-level model has already processed (read when
    the model is compiled, before its pre-hooks delete anything). -#}
{% macro last_touchpoints_load() -%}
    {{ timestamptz_literal("select max(dbt_loaded_at) from " ~ this) }}
{%- endmacro %}

{#- Pre-hook of the person-keyed incremental models: deletes the stored rows the run replaces,
    rows that delete+insert alone would keep because no new row carries their key. Always the
    rows of anonymous identities stitched to a user since the last load; with
    `moved_from_persons` (user_paths) also the rows of persons a journey step moved away from
    (those with steps left are recomputed and inserted again, the others have no journey any
    more); with `rewritten_conversions` (attribution_touch_credits, keyed by conversion) also the
    rows of conversions whose touchpoint was rewritten (one that is no longer a conversion, or no
    longer this person's, would keep its old rows). One hook, so every delete reads the same last
    load as the model; one statement each, so each goes through its own index. -#}
{% macro delete_rows_replaced_since_last_load(moved_from_persons=false, rewritten_conversions=false) -%}
    {%- if is_incremental() -%}
    {%- set last_load = last_touchpoints_load() -%}
    delete from {{ this }}
    where person_id in (
        select anonymous_id from {{ ref('int_touchpoints_identified') }}
        where dbt_loaded_at > {{ last_load }}
            and anonymous_id is not null and person_id <> anonymous_id
    )
    {%- if moved_from_persons %};
    delete from {{ this }}
    where person_id in (
        select moved_from_person_id from {{ ref('int_journey_steps') }}
        where dbt_loaded_at > {{ last_load }} and moved_from_person_id is not null
    )
    {%- endif %}
    {%- if rewritten_conversions %};
    delete from {{ this }}
    where conversion_event_id in (
        select event_id from {{ ref('int_touchpoints_identified') }}
        where dbt_loaded_at > {{ last_load }}
    )
    {%- endif %}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: ANALYZE the model's table when it has no statistics yet, i.e. when it was just
    (re)built. The incremental runs' plans (index probes for a day of rows, not scans of ten
    million) rest on them, and autovacuum may be off or not have got there before the next run.
    An incremental run leaves the statistics as they are: nothing to pay there. -#}
{% macro analyze_if_without_statistics() -%}
    do $analyze$
    begin
        if not exists (
            select 1 from pg_catalog.pg_stats
            where schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
        ) then
            execute 'analyze {{ this }}';
        end if;
    end
    $analyze$
{%- endmacro %}

{#- Project pre-hook: more sort memory for an incremental model's batch (a day's rows sort in
    memory instead of spilling to disk); full builds keep the server's setting. -#}
{% macro incremental_work_mem() -%}
    {%- if is_incremental() -%}set local work_mem = '64MB'{%- else -%}select 1{%- endif -%}
{%- endmacro %}

{#- `numerator / denominator` as a share with 6 decimals; null when the denominator is 0 or
    null (a share of nothing is unknown, not 0). -#}
{% macro share(numerator, denominator) -%}
    (({{ numerator }})::numeric / nullif({{ denominator }}, 0))::numeric(10, 6)
{%- endmacro %}

{#- The first day (UTC) a day-grain reconciliation mart recomputes in an incremental run, as a
    date literal: the earliest day whose numbers may have changed since the mart's last load
    (its newest `dbt_loaded_at`): Meta's rows re-fetched since then (with `meta_side`),
    credits written since then, the previous day of touchpoints rewritten since then (a
    conversion that moved or stopped being one leaves that day), Conversions API queue rows
    written or updated since then. 'infinity' when nothing changed, '-infinity' when the mart is
    empty. Read when the model compiles, before its pre-hook deletes anything. -#}
{% macro reconciliation_recompute_from(meta_side=true) -%}
    {%- if not execute or not is_incremental() -%}
        {{- return("'-infinity'::date") -}}
    {%- endif -%}
    {%- set since = timestamptz_literal('select max(dbt_loaded_at) from ' ~ this) -%}
    {%- set lookback = "interval '" ~ var('late_arrival_lookback_days') ~ " days'" -%}
    {%- set days -%}
        select least(
            {%- if meta_side %}
            (select min(report_date) from {{ ref('ad_performance_daily') }}
                where fetched_at > {{ since }} - {{ lookback }}),
            {%- endif %}
            (select min((converted_at at time zone 'UTC')::date)
                from {{ ref('attribution_touch_credits') }} where dbt_loaded_at > {{ since }}),
            (select min((previous_occurred_at at time zone 'UTC')::date)
                from {{ ref('int_touchpoints_identified') }}
                where dbt_loaded_at > {{ since }} and previous_occurred_at is not null),
            (select min((event_time at time zone 'UTC')::date)
                from {{ ref('stg_meta__conversion_events') }}
                where greatest(created_at, last_attempt_at, sent_at) > {{ since }} - {{ lookback }})
        )
    {%- endset -%}
    {%- set empty = run_query('select not exists (select 1 from ' ~ this ~ ')').columns[0].values()[0] -%}
    {%- set value = run_query('select (' ~ days ~ ')::text').columns[0].values()[0] -%}
    {{- return("'" ~ ("-infinity" if empty else (value if value is not none else "infinity")) ~ "'::date") -}}
{%- endmacro %}

{#- Pre-hook of an incremental day-grain model: delete its rows from `first_day` on (a date
    literal), which the run then inserts again. Nothing on a full build. -#}
{% macro delete_days_from(first_day, column) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ column }} >= {{ first_day }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

