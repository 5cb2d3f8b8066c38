{#- Which rows a data test reads (dbt's `get_where_subquery`, dispatched for Postgres).
    A test that carries `meta: {daily_scope: latest_load}` in its config reads, in a windowed
    run (the Dagster daily job: `window_start()` is set), only the rows of its model's latest
    load: every row one load writes carries that load's `dbt_loaded_at`, the newest in the
    table, and the rows before it were tested when they were written. The choice is made per
    test in the yml, where a reader sees it; it suits tests that judge rows (or groups written
    together) on their own, so a reconciliation such as `equal_sums`, which compares whole
    tables, is refused the flag. Uniqueness across old and new rows is enforced by the models'
    unique indexes, and a relationship test restricts only its child side. Without a window
    (`dbt test`, `dbt build` by hand, a full refresh) every test reads the whole table, as dbt
    does by default. A test's own `where` config still applies. -#}
{% macro postgres__get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- if config.get('where', '') -%}
        {%- do filters.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- set scope = (config.get('meta') or {}).get('daily_scope') -%}
    {%- if scope -%}
        {%- do check_daily_scope(scope) -%}
    {%- endif -%}
    {%- if execute and scope and window_start() -%}
        {#- a literal: Postgres plans it from the column statistics (a day's rows through the
            dbt_loaded_at index), where a subquery makes it read the whole table -#}
        {%- do filters.append(
            'dbt_loaded_at = ' ~ timestamptz_literal('select max(dbt_loaded_at) from ' ~ relation)
        ) -%}
    {%- endif -%}
    {%- if filters -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ filters | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- A `daily_scope` flag the calling test can carry: the one value, on a test whose verdict
    holds row by row, on a model that stamps its rows with `dbt_loaded_at`. Anything else fails
    the run with a message naming the test (a silently ignored flag would test less than it
    says). -#}
{% macro check_daily_scope(scope) -%}
    {%- if scope != 'latest_load' -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ ": daily_scope must be 'latest_load', not '" ~ scope ~ "'") }}
    {%- endif -%}
    {%- set test_name = model.get('test_metadata', {}).get('name') -%}
    {%- if test_name not in row_local_tests() -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ ": daily_scope suits tests that judge rows on their own ("
            ~ row_local_tests() | join(', ') ~ "), not " ~ test_name) }}
    {%- endif -%}
    {%- if execute -%}
        {%- set parent = graph.nodes.get(model.get('attached_node') or '') -%}
        {%- if parent is none or 'dbt_loaded_at' not in parent.columns -%}
            {{ exceptions.raise_compiler_error(
                model.name ~ ": daily_scope needs a model that documents a dbt_loaded_at column") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- Generic tests whose verdict on a set of rows holds row by row (or per conversion, whose
    credits one load writes together). -#}
{% macro row_local_tests() -%}
    {{- return(['unique', 'not_null', 'accepted_values', 'relationships', 'expression_is_true',
                'unique_combination_of_columns', 'sums_to_one']) -}}
{%- endmacro %}
