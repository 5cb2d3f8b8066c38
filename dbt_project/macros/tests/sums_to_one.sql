{#- Attribution: the credits of each group (e.g. one conversion x one model) sum to exactly 1. -#}
{% test sums_to_one(model, column_name, group_by) %}
select {{ group_by | join(', ') }}, sum({{ column_name }}) as total_credit
from {{ model }}
group by {{ group_by | join(', ') }}
having sum({{ column_name }}) <> 1
{% endtest %}
