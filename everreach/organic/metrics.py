"""Every organic metric the project requests from Meta — the one place to edit.

When Meta deprecates a metric, change the tuple here (one line) and nothing else. Lists are
per platform and per media kind because Meta rejects a whole insights call when one metric
is not valid for that kind of object (2025: ``views`` replaced ``impressions``/``plays``
on Instagram; ``page_media_view`` replaced ``page_impressions``; ``page_follows`` replaced
``page_fans``).
"""

from __future__ import annotations

# --------------------------------------------------------------------------- Instagram
#: Lifetime media metrics per media kind (see :func:`instagram_media_kind`).
INSTAGRAM_MEDIA_METRICS: dict[str, tuple[str, ...]] = {
    "FEED_IMAGE": (
        "views",
        "reach",
        "likes",
        "comments",
        "shares",
        "saved",
        "total_interactions",
        "profile_visits",
        "follows",
    ),
    "FEED_VIDEO": (
        "views",
        "reach",
        "likes",
        "comments",
        "shares",
        "saved",
        "total_interactions",
        "profile_visits",
        "follows",
    ),
    "CAROUSEL_ALBUM": (
        "views",
        "reach",
        "likes",
        "comments",
        "shares",
        "saved",
        "total_interactions",
    ),
    "REELS": (
        "views",
        "reach",
        "likes",
        "comments",
        "shares",
        "saved",
        "total_interactions",
        "ig_reels_avg_watch_time",
        "ig_reels_video_view_total_time",
    ),
    "STORY": (
        "views",
        "reach",
        "replies",
        "shares",
        "follows",
        "profile_visits",
        "total_interactions",
        "navigation",
    ),
}
#: Extra query parameters per media kind (story exits/taps come as a navigation breakdown).
INSTAGRAM_MEDIA_PARAMS: dict[str, dict[str, str]] = {
    "STORY": {"breakdown": "story_navigation_action_type"},
}
#: Fields read from ``/{ig-user-id}/media`` and ``/stories`` (children: carousel items).
INSTAGRAM_MEDIA_FIELDS = (
    "id,caption,media_type,media_product_type,permalink,timestamp,"
    "like_count,comments_count,thumbnail_url,children{id,media_type}"
)

#: Account metrics served as a daily time series (``period=day``).
INSTAGRAM_ACCOUNT_TIME_SERIES: tuple[str, ...] = ("reach", "follower_count")
#: Account metrics Meta serves only with ``metric_type=total_value`` (asked one day at a time).
INSTAGRAM_ACCOUNT_TOTAL_VALUE: tuple[str, ...] = (
    "views",
    "accounts_engaged",
    "total_interactions",
    "likes",
    "comments",
    "shares",
    "saves",
    "replies",
    "profile_views",
    "website_clicks",
    "profile_links_taps",
)
#: ``follower_count`` exists only for the last 30 days.
INSTAGRAM_FOLLOWER_COUNT_DAYS = 30

# --------------------------------------------------------------------------- Facebook Pages
#: Lifetime post metrics (``/{post-id}/insights``).
FACEBOOK_POST_METRICS: tuple[str, ...] = (
    "post_media_view",
    "post_total_media_view_unique",
    "post_clicks",
    "post_reactions_by_type_total",
)
#: Fields of ``/{page-id}/posts``; comments/shares/reactions totals become metrics too.
FACEBOOK_POST_FIELDS = (
    "id,message,created_time,permalink_url,status_type,full_picture,"
    "shares,comments.summary(true).limit(0),"
    "reactions.summary(true).limit(0)"
)
#: Daily Page metrics (``/{page-id}/insights?period=day``).
FACEBOOK_PAGE_METRICS: tuple[str, ...] = (
    "page_media_view",
    "page_total_media_view_unique",
    "page_views_total",
    "page_follows",
    "page_daily_follows_unique",
    "page_daily_unfollows_unique",
    "page_post_engagements",
)

#: The metric that must exist for every account-day (asset check), per platform.
FOLLOWER_METRIC = {"instagram": "follower_count", "facebook": "page_follows"}


def instagram_media_kind(media_type: str | None, product_type: str | None) -> str | None:
    """The key of :data:`INSTAGRAM_MEDIA_METRICS` for a media, or None (no insights)."""
    if product_type == "STORY":
        return "STORY"
    if product_type == "REELS":
        return "REELS"
    if media_type == "CAROUSEL_ALBUM":
        return "CAROUSEL_ALBUM"
    if media_type == "VIDEO":
        return "FEED_VIDEO"
    if media_type == "IMAGE":
        return "FEED_IMAGE"
    return None
