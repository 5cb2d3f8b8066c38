{#- Which rows a data test reads (dbt's `get_where_subquery`, dispatched for Postgres).
    In a windowed run (the Dagster daily job: `window_start()` is set), a test on an incremental
    model that stamps its rows with `dbt_loaded_at` reads only the rows its latest load wrote:
    every row one load writes carries that load's time, the newest in the table, and the rows
    before it were tested when they were written. Their uniqueness across old and new rows is
    enforced by the models' unique indexes, and a relationship test restricts only the child
    side. Only tests that judge rows (or groups of one conversion) on their own are narrowed
    (`row_local_tests`); a reconciliation such as `equal_sums` compares whole tables and reads
    them whole. Without a window (`dbt test`, `dbt build` by hand, a full refresh) every test reads the
    whole table, as dbt does by default. A test's own `where` config still applies. -#}
{% macro postgres__get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- if config.get('where', '') -%}
        {%- do filters.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- if execute and window_start()
        and model.get('test_metadata', {}).get('name') in row_local_tests()
        and relation.identifier in incremental_models_stamped_with_load_time(relation.schema) -%}
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

{#- Aliases of the incremental models in `schema` that document a `dbt_loaded_at` column. -#}
{% macro incremental_models_stamped_with_load_time(schema) -%}
    {%- set aliases = [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.schema == schema
            and node.config.materialized == 'incremental' and 'dbt_loaded_at' in node.columns -%}
            {%- do aliases.append(node.alias) -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return(aliases) -}}
{%- endmacro %}

{#- Generic tests whose verdict on a set of rows holds row by row (or per conversion, whose
    credits one load writes together): safe to run on the latest load's rows alone. -#}
{% macro row_local_tests() -%}
    {{- return(['unique', 'not_null', 'accepted_values', 'relationships', 'expression_is_true',
                'unique_combination_of_columns', 'sums_to_one']) -}}
{%- endmacro %}
