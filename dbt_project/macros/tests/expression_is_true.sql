{#- Every row (optionally filtered by `where` config) satisfies `expression`. -#}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}
