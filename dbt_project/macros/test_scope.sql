{#- Which rows a data test reads in the Dagster daily job (a windowed run: `window_start()` is
    set). A test narrows only when its yml says so, in its config's meta:

      daily_scope: latest_load
          the rows of its model's latest load: every row one load writes carries that load's
          `dbt_loaded_at`, the newest in the table, and the rows before it were tested when
          they were written (row-local tests on load-stamped models);
      daily_scope: window, window_column: <column>
          the rows written since the window's start minus the late-arrival lookback, by the
          table's own write time (`inserted_at`, `fetched_at`, …): what the day's run read
          (row-local tests on raw tables, their staging views and the models loaded by that
          column);
      daily_scope: persons_of_latest_load
          for a reconciliation that holds person by person (`equal_sums`): both sides only for
          the persons with rows in the model's latest load (applied by the test itself).

    Row-local tests are those whose verdict on a set of rows holds row by row (or for the rows
    of one conversion, which one load writes together): uniqueness across old and new rows is
    enforced by the tables' unique indexes and primary keys, and a relationship test restricts
    only its child side. A flag on any other test, an unknown scope or a `latest_load` on a model
    without `dbt_loaded_at` fails the run naming the test. Without a window (`dbt test`,
    `dbt build` by hand, a full refresh) every test reads whole tables, as dbt does by default.
    A test's own `where` config still applies. -#}
{% macro postgres__get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- if config.get('where', '') -%}
        {%- do filters.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- set scope = meta.get('daily_scope') -%}
    {%- if scope -%}
        {%- do check_daily_scope(scope, meta) -%}
    {%- endif -%}
    {%- if execute and scope and window_start() -%}
        {#- literals: Postgres plans them from the column statistics (a day's rows through the
            column's index), where a subquery makes it read the whole table -#}
        {%- if scope == 'latest_load' -%}
            {%- do filters.append('dbt_loaded_at = ' ~ latest_load_literal(relation)) -%}
        {%- elif scope == 'window' -%}
            {%- do filters.append(meta.get('window_column') ~ ' >= ' ~ window_cutoff()) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if filters -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ filters | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- The newest `dbt_loaded_at` of `relation`, as a literal. Read as the first row of a
    descending order, not as max(): through a view (user_journeys joins its steps to the
    paths) Postgres walks the steps' index backwards and stops at one row, where max() over a
    join reads all of it. -#}
{% macro latest_load_literal(relation) -%}
    {{- timestamptz_literal(
        'select dbt_loaded_at from ' ~ relation ~ ' where dbt_loaded_at is not null'
        ~ ' order by dbt_loaded_at desc limit 1'
    ) -}}
{%- endmacro %}

{#- For a reconciliation test flagged `persons_of_latest_load`: the condition (starting with
    `and`) that keeps one side to the persons with rows in `model`'s latest load, in a
    windowed run; '' otherwise. `person_column` in the meta names the column (person_id). -#}
{% macro daily_scope_persons(model) -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- if execute and meta.get('daily_scope') == 'persons_of_latest_load' and window_start() -%}
        {%- set column = meta.get('person_column', 'person_id') -%}
        and {{ column }} = any(array(
            select distinct {{ column }} from {{ model }}
            where dbt_loaded_at = {{ latest_load_literal(model) }}
        ))
    {%- endif -%}
{%- endmacro %}

{#- A `daily_scope` flag the calling test can carry (see `postgres__get_where_subquery`);
    anything else fails the run with a message naming the test (a silently ignored flag would
    test less than it says). -#}
{% macro check_daily_scope(scope, meta) -%}
    {%- set test_name = model.get('test_metadata', {}).get('name') -%}
    {%- if scope in ('latest_load', 'window') -%}
        {%- if test_name not in row_local_tests() -%}
            {{ exceptions.raise_compiler_error(
                model.name ~ ": daily_scope " ~ scope ~ " suits tests that judge rows on their own ("
                ~ row_local_tests() | join(', ') ~ "), not " ~ test_name) }}
        {%- endif -%}
        {%- if scope == 'window' and not meta.get('window_column') -%}
            {{ exceptions.raise_compiler_error(
                model.name ~ ": daily_scope window needs window_column (the table's write time)") }}
        {%- endif -%}
        {%- if scope == 'latest_load' and execute -%}
            {%- set parent = graph.nodes.get(model.get('attached_node') or '') -%}
            {%- if parent is none or 'dbt_loaded_at' not in parent.columns -%}
                {{ exceptions.raise_compiler_error(
                    model.name ~ ": daily_scope latest_load needs a model that documents a "
                    ~ "dbt_loaded_at column") }}
            {%- endif -%}
        {%- endif -%}
    {%- elif scope == 'persons_of_latest_load' -%}
        {%- if test_name != 'equal_sums' -%}
            {{ exceptions.raise_compiler_error(
                model.name ~ ": daily_scope persons_of_latest_load is for equal_sums, not "
                ~ test_name) }}
        {%- endif -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ ": daily_scope must be latest_load, window or persons_of_latest_load, not '"
            ~ scope ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{#- Generic tests whose verdict on a set of rows holds row by row (or per conversion, whose
    credits one load writes together). -#}
{% macro row_local_tests() -%}
    {{- return(['unique', 'not_null', 'accepted_values', 'relationships', 'expression_is_true',
                'unique_combination_of_columns', 'sums_to_one']) -}}
{%- endmacro %}
