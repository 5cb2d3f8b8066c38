"""Data checks of the organic tables, computed in SQL over the run's dates, and the
freshness asset checks of the three organic tables."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from everreach.organic.metrics import FOLLOWER_METRIC, INSTAGRAM_FOLLOWER_COUNT_DAYS
from everreach_pipelines.freshness import freshness_check

#: Insights are written by the daily run (03:30 UTC): a day plus slack for a late or
#: retried run.
INSIGHTS_MAX_AGE = timedelta(hours=30)
#: `social_media_post` rows are rewritten only when a post is new or changed, so a quiet
#: week without posts (or edits) is normal up to this.
POSTS_MAX_AGE = timedelta(days=7)

#: Post metrics that are averages, not lifetime counters (they may go down).
NON_COUNTER_METRICS = ("ig_reels_avg_watch_time",)


def duplicate_snapshot_keys(conn: psycopg.Connection, first: date, last: date) -> int:
    """Rows beyond one per (platform, post, snapshot_date, metric) in the window."""
    return conn.execute(
        "select count(*) - count(distinct (platform, post_id, snapshot_date, metric)) "
        "from social_post_insights where snapshot_date between %s and %s",
        (first, last),
    ).fetchone()[0]


def negative_snapshot_values(conn: psycopg.Connection, first: date, last: date) -> int:
    """Snapshot rows with a negative counter in the window."""
    return conn.execute(
        "select count(*) from social_post_insights where snapshot_date between %s and %s "
        "and value < 0",
        (first, last),
    ).fetchone()[0]


def decreasing_counters(conn: psycopg.Connection, first: date, last: date) -> int:
    """Snapshots in the window lower than the post's previous snapshot of the metric."""
    return conn.execute(
        """
        select count(*) from (
          select value, snapshot_date, lag(value) over (
                   partition by platform, post_id, metric order by snapshot_date) as prev
          from social_post_insights
          where snapshot_date <= %(last)s and metric <> all(%(skip)s)
            and (platform, post_id) in (select platform, post_id from social_post_insights
                                        where snapshot_date between %(first)s and %(last)s)
        ) s where snapshot_date >= %(first)s and value < prev
        """,
        {"first": first, "last": last, "skip": list(NON_COUNTER_METRICS)},
    ).fetchone()[0]


def duplicate_account_keys(conn: psycopg.Connection, first: date, last: date) -> int:
    """Rows beyond one per (platform, account, date, metric, period) in the window."""
    return conn.execute(
        "select count(*) - count(distinct (platform, account_id, date, metric, period)) "
        "from social_account_insights where date between %s and %s",
        (first, last),
    ).fetchone()[0]


def negative_account_values(conn: psycopg.Connection, first: date, last: date) -> int:
    """Account rows with a negative value in the window."""
    return conn.execute(
        "select count(*) from social_account_insights where date between %s and %s and value < 0",
        (first, last),
    ).fetchone()[0]


def account_days_without_followers(
    conn: psycopg.Connection, first: date, last: date
) -> list[tuple[str, str, date]]:
    """Account-days with metrics but no follower metric.

    Instagram keeps ``follower_count`` for 30 days only: days older than that when they
    were fetched are not expected to have it.
    """
    return conn.execute(
        """
        select d.platform, d.account_id, d.date
        from (select platform, account_id, date, max(fetched_at) as fetched_at
              from social_account_insights where date between %(first)s and %(last)s
              group by 1, 2, 3) d
        where not exists (
            select 1 from social_account_insights f
            where f.platform = d.platform and f.account_id = d.account_id
              and f.date = d.date
              and f.metric = case d.platform when 'instagram' then %(ig)s else %(fb)s end)
          and not (d.platform = 'instagram'
                   and (d.fetched_at at time zone 'UTC')::date - d.date > %(days)s)
        order by 1, 2, 3
        """,
        {
            "first": first,
            "last": last,
            "ig": FOLLOWER_METRIC["instagram"],
            "fb": FOLLOWER_METRIC["facebook"],
            "days": INSTAGRAM_FOLLOWER_COUNT_DAYS,
        },
    ).fetchall()


# Asset keys as strings: `assets.py` imports this module.
social_media_post_freshness = freshness_check(
    asset="social_media_post",
    name="fresh_within_7_days",
    table="social_media_post",
    column="updated_at",
    max_age=POSTS_MAX_AGE,
    description="A post was new or changed in the last 7 days (newest "
    "social_media_post.updated_at; unchanged posts are not rewritten).",
)
# The newest rows are near today: look there first through the date index, and scan the
# whole table only when nothing recent exists (the check fails then anyway).
social_post_insights_freshness = freshness_check(
    asset="social_post_insights",
    name="fresh_within_30_hours",
    table="social_post_insights",
    column="fetched_at",
    max_age=INSIGHTS_MAX_AGE,
    description="The daily run wrote post insight snapshots in the last 30 hours "
    "(newest social_post_insights.fetched_at).",
    queries=[
        "select max(fetched_at) from social_post_insights where snapshot_date >= current_date - 7",
        "select max(fetched_at) from social_post_insights",
    ],
)
social_account_insights_freshness = freshness_check(
    asset="social_account_insights",
    name="fresh_within_30_hours",
    table="social_account_insights",
    column="fetched_at",
    max_age=INSIGHTS_MAX_AGE,
    description="The daily run wrote account insights in the last 30 hours "
    "(newest social_account_insights.fetched_at).",
    queries=[
        "select max(fetched_at) from social_account_insights where date >= current_date - 7",
        "select max(fetched_at) from social_account_insights",
    ],
)
FRESHNESS_CHECKS = [
    social_media_post_freshness,
    social_post_insights_freshness,
    social_account_insights_freshness,
]
