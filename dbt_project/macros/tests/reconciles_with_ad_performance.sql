{#- Reconciliation with `ad_performance_daily`: per `keys` (report_date, ad_account_id and
    optionally meta_ad_id), the model's sums of `measures` equal the ad-level rows of
    ad_performance_daily, on the account-days the model holds (each raw table is synced by its
    own asset, so the two may not cover the same days yet). -#}
{% test reconciles_with_ad_performance(model, keys, measures) %}
with model_side as (
    select
        {{ keys | join(', ') }},
        {%- for m in measures %}
            sum({{ m }}) as {{ m }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ model }}
    group by {{ keys | join(', ') }}
),

account_days as (
    select distinct report_date, ad_account_id from model_side
),

performance_side as (
    select
        {%- for k in keys %}
            performance.{{ k }},
        {%- endfor %}
        {%- for m in measures %}
            sum(performance.{{ m }}) as {{ m }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ ref('ad_performance_daily') }} as performance
    inner join account_days
        on
            performance.report_date = account_days.report_date
            and performance.ad_account_id = account_days.ad_account_id
    where performance.report_level = 'ad'
    group by {% for k in keys %}performance.{{ k }}{{ ", " if not loop.last }}{% endfor %}
)

select *
from model_side
full outer join performance_side using ({{ keys | join(', ') }})
where
    {%- for m in measures %}
        abs(coalesce(model_side.{{ m }}, 0) - coalesce(performance_side.{{ m }}, 0)) > 0.0001
        {{- " or" if not loop.last }}
    {%- endfor %}
{% endtest %}
