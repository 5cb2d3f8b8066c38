-- Campaign rollups over the last 7 and 28 days (ending on the newest reported date) and the
-- campaign's lifetime. Ratios are ratios of sums, never averages of daily ratios. Reach is
-- not additive across days, so rollups leave it out (see ad_performance_daily).
with daily as (
    select * from {{ ref('ad_performance_daily') }}
    where report_level = 'campaign'
),

last_day as (
    select max(report_date) as report_date from daily
),

windows as (
    select 'last_7_days' as window_name, last_day.report_date - 6 as window_start, last_day.report_date as window_end
    from last_day
    union all
    select
        'last_28_days' as window_name,
        last_day.report_date - 27 as window_start,
        last_day.report_date as window_end
    from last_day
    union all
    select
        'lifetime' as window_name,
        (select min(daily.report_date) from daily) as window_start,
        last_day.report_date as window_end
    from last_day
),

rolled_up as (
    select
        daily.campaign_id,
        windows.window_name,
        windows.window_start,
        windows.window_end,
        min(daily.currency) as currency,
        sum(daily.spend) as spend,
        sum(daily.impressions) as impressions,
        sum(daily.clicks) as clicks,
        sum(daily.link_clicks) as link_clicks,
        sum(daily.conversions) as conversions,
        sum(daily.conversion_value) as conversion_value
    from daily
    inner join windows on daily.report_date between windows.window_start and windows.window_end
    group by daily.campaign_id, windows.window_name, windows.window_start, windows.window_end
)

select
    rolled_up.campaign_id,
    campaigns.campaign_name,
    campaigns.meta_campaign_id,
    rolled_up.window_name,
    rolled_up.window_start,
    rolled_up.window_end,
    rolled_up.currency,
    rolled_up.spend::numeric(18, 4) as spend,
    rolled_up.impressions::bigint as impressions,
    rolled_up.clicks::bigint as clicks,
    rolled_up.link_clicks::bigint as link_clicks,
    rolled_up.conversions::numeric(18, 4) as conversions,
    rolled_up.conversion_value::numeric(18, 4) as conversion_value,
    (rolled_up.conversion_value / nullif(rolled_up.spend, 0))::numeric(18, 6) as roas,
    (rolled_up.clicks::numeric / nullif(rolled_up.impressions, 0))::numeric(18, 6) as ctr,
    (rolled_up.spend / nullif(rolled_up.clicks, 0))::numeric(18, 6) as cpc,
    (rolled_up.spend * 1000 / nullif(rolled_up.impressions, 0))::numeric(18, 6) as cpm
from rolled_up
left join {{ ref('stg_everreach__campaigns') }} as campaigns
    on campaigns.campaign_id = rolled_up.campaign_id
