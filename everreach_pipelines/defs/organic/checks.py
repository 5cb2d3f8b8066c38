"""The freshness asset checks of the three organic tables (the data checks run with the
assets; their SQL is in `everreach/organic/checks.py`)."""

from __future__ import annotations

from datetime import timedelta

from everreach_pipelines.freshness import freshness_check

#: Insights are written by the daily run (03:30 UTC): a day plus slack for a late or
#: retried run.
INSIGHTS_MAX_AGE = timedelta(hours=30)
#: `social_media_post` rows are rewritten only when a post is new or changed, so a quiet
#: week without posts (or edits) is normal up to this.
POSTS_MAX_AGE = timedelta(days=7)

# Asset keys as strings: the data checks and the assets stay in `assets.py`.
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
