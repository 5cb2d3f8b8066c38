"""Data checks of the organic tables, computed in SQL over a run's dates (the Dagster asset
checks call these), and the follower series the account asset charts."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from everreach.organic.metrics import FOLLOWER_METRIC, INSTAGRAM_FOLLOWER_COUNT_DAYS

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


def follower_series(conn: psycopg.Connection, last: date, days: int) -> list[tuple]:
    """(platform, account, date, value) of each account's follower metric (IG
    follower_count, Page page_follows) over the `days` days up to `last` (the date index
    bounds the scan)."""
    return conn.execute(
        """
        select platform, account_id, date, max(value)
        from social_account_insights
        where date between %(first)s and %(last)s
          and metric = case platform when 'instagram' then %(ig)s else %(fb)s end
        group by 1, 2, 3 order by 1, 2, 3
        """,
        {
            "first": last - timedelta(days=days - 1),
            "last": last,
            "ig": FOLLOWER_METRIC["instagram"],
            "fb": FOLLOWER_METRIC["facebook"],
        },
    ).fetchall()
