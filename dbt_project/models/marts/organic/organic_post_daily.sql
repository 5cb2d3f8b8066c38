-- Per post, metric and day: the lifetime counter Meta reported and the day's delta from the
-- previous snapshot (the first snapshot's delta is everything up to it). Meta sometimes
-- revises a counter down; the delta is then negative, as reported.
with snapshots as (
    select * from {{ ref('stg_meta__social_post_insights') }}
),

posts as (
    select * from {{ ref('stg_meta__social_posts') }}
)

select
    snapshots.platform,
    snapshots.post_id,
    posts.account_id,
    posts.media_type,
    posts.media_product_type,
    snapshots.snapshot_date,
    snapshots.metric,
    snapshots.lifetime_value,
    snapshots.lifetime_value - coalesce(lag(snapshots.lifetime_value) over (
        partition by snapshots.platform, snapshots.post_id, snapshots.metric
        order by snapshots.snapshot_date
    ), 0) as daily_delta,
    snapshots.snapshot_date - lag(snapshots.snapshot_date) over (
        partition by snapshots.platform, snapshots.post_id, snapshots.metric
        order by snapshots.snapshot_date
    ) as days_since_previous_snapshot
from snapshots
inner join posts on posts.platform = snapshots.platform and posts.post_id = snapshots.post_id
where snapshots.lifetime_value is not null
