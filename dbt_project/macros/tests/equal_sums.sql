{#- Reconciliation: sum(`column_name`) of the model equals sum(`compare_column`) of
    `compare_model` (each side optionally filtered), within `tolerance`. Flagged
    `daily_scope: persons_of_latest_load`, the daily job compares both sides for the persons of
    the model's latest load only (`macros/test_scope.sql`). -#}
{% test equal_sums(model, column_name, compare_model, compare_column, model_where='true',
                   compare_where='true', tolerance=0.0001) %}
{%- set persons = daily_scope_persons(model) -%}
with model_side as (
    select coalesce(sum({{ column_name }}), 0) as total
    from {{ model }} where {{ model_where }} {{ persons }}
),

compare_side as (
    select coalesce(sum({{ compare_column }}), 0) as total
    from {{ compare_model }} where {{ compare_where }} {{ persons }}
)

select model_side.total as model_total, compare_side.total as compare_total
from model_side cross join compare_side
where abs(model_side.total - compare_side.total) > {{ tolerance }}
{% endtest %}
