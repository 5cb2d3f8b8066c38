-- Per account and day: followers gained / lost, reach and views, mapping Instagram and Page
-- metric names (current and pre-deprecation) onto one set of columns.
with metrics as (
    select * from {{ ref('stg_meta__social_account_insights') }}
    where period in ('day', 'total_value')
)

select
    platform,
    account_id,
    metric_date,
    coalesce(
        max(metric_value) filter (where metric in (
            'follows', 'page_daily_follows_unique',
            'page_daily_follows', 'page_fan_adds_unique'
        )),
        max(metric_value) filter (where metric = 'follower_count' and platform = 'instagram')
    ) as followers_gained,
    max(metric_value) filter (where metric in (
        'unfollows', 'page_daily_unfollows_unique',
        'page_fan_removes_unique'
    )) as followers_lost,
    max(metric_value) filter (where metric in (
        'reach', 'page_impressions_unique',
        'page_total_media_view_unique'
    )) as reach,
    max(metric_value) filter (where metric in (
        'views', 'page_media_view', 'page_views_total',
        'page_impressions'
    )) as views,
    max(metric_value) filter (where metric in ('profile_views', 'page_views_total'))
        as profile_views,
    max(metric_value) filter (where metric in (
        'total_interactions', 'accounts_engaged',
        'page_post_engagements'
    )) as engagements
from metrics
group by platform, account_id, metric_date
