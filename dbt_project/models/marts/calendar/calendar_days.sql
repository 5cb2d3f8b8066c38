-- One row per day, 2020 through 2035: the semantic layer's time spine (MetricFlow joins
-- `metric_time` to it) and a date dimension for BI tools.
select day::date as date_day
from generate_series(date '2020-01-01', date '2035-12-31', interval '1 day') as days (day)
