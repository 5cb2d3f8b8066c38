{#- Models land in exactly `staging`, `intermediate`, `marts` (no target-schema prefix):
    BI dashboards and the Dagster side query those names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
