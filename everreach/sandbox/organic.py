"""Organic domain of the sandbox: Instagram business accounts and Facebook Pages.

What exists (all deterministic from ``SandboxConfig.seed`` and the knobs in
``SandboxConfig.extra``):

* ``ig_accounts`` Instagram business accounts (default 2), each with
  ``ig_media_per_account`` media (default 40: images, carousels, feed videos, reels)
  spread over the last ``organic_days`` days (default 120) and ``ig_stories_per_day``
  stories a day (default 2). ``/{ig-user-id}/media`` lists feed media newest first
  (``limit`` ≤ 100); ``/{ig-user-id}/stories`` lists only stories younger than 24 h.
* ``fb_pages`` Facebook Pages (default 2), each with ``fb_posts_per_page`` posts
  (default 30). Every IG account belongs to a page (``parent``) when there are pages.
* Lifetime counters grow with the age of a post relative to ``sandbox.now()``
  (``final × (1 − e^(−age/τ))`` plus a slow tail), so they never decrease and two
  snapshots a day apart differ.

Meta's rules the sandbox enforces, because the client must survive them:

* ``/{media-id}/insights?metric=…``: the valid metrics depend on the media type and
  product type (:data:`IG_VALID_METRICS`); one invalid or deprecated metric fails the
  whole call with code 100 naming it. Carousel children have no insights. Story
  insights come back empty once a story is 24 h old. Media posted before the account's
  business conversion fail with subcode 2108006; a few media with tiny reach fail with
  code 10 "Not enough viewers".
* ``/{ig-user-id}/insights?period=day``: ``reach``/``follower_count`` are time series;
  the others need ``metric_type=total_value``; ``follower_count`` only for the last
  30 days; since..until at most 30 days.
* Pages: ``GET /{page-id}?fields=access_token`` with a user token returns the Page token;
  ``/{page-id}/posts|published_posts|feed``, ``/{post-id}/insights`` and
  ``/{page-id}/insights`` require that Page token (else code 210). Page insights:
  since..until at most 90 days; pre-2025 metric names (``page_impressions``,
  ``page_fans``…) fail with code 100.
* The Graph batch API (``POST /`` or ``POST /{version}/`` with ``batch=[…]``, at most 50
  requests) runs each request through the core, so auth, faults and rate limits apply
  to every item, and each item answers with its own code and body.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from everreach.sandbox.core import CURRENT_VERSION, Sandbox, parse_field, read_params, split_fields
from everreach.sandbox.usage import UsageScope

DOMAIN = "organic"
STORY_LIFETIME = timedelta(hours=24)
BATCH_LIMIT = 50
IG_FOLLOWER_COUNT_DAYS = 30
IG_MAX_RANGE_DAYS = 30
PAGE_MAX_RANGE_DAYS = 90

# ----------------------------------------------------------------------------- metrics
# What Meta accepts today, per (media_type, media_product_type). The client keeps its
# own lists (everreach/organic/metrics.py): these are the sandbox's independent copy of
# Meta's rules, so a wrong client list fails here exactly as it would at Meta.
_FEED_COMMON = ("views", "reach", "likes", "comments", "shares", "saved", "total_interactions")
IG_VALID_METRICS: dict[tuple[str, str], frozenset[str]] = {
    ("IMAGE", "FEED"): frozenset(_FEED_COMMON + ("profile_visits", "follows", "profile_activity")),
    ("VIDEO", "FEED"): frozenset(_FEED_COMMON + ("profile_visits", "follows", "profile_activity")),
    ("CAROUSEL_ALBUM", "FEED"): frozenset(_FEED_COMMON + ("profile_visits", "follows")),
    ("VIDEO", "REELS"): frozenset(
        _FEED_COMMON + ("ig_reels_avg_watch_time", "ig_reels_video_view_total_time")
    ),
    ("IMAGE", "STORY"): frozenset(
        (
            "views",
            "reach",
            "replies",
            "shares",
            "follows",
            "profile_visits",
            "navigation",
            "total_interactions",
        )
    ),
    ("VIDEO", "STORY"): frozenset(
        (
            "views",
            "reach",
            "replies",
            "shares",
            "follows",
            "profile_visits",
            "navigation",
            "total_interactions",
        )
    ),
}
IG_DEPRECATED_MEDIA_METRICS = frozenset(
    {
        "impressions",
        "plays",
        "clips_replays_count",
        "ig_reels_aggregated_all_plays_count",
        "video_views",
        "engagement",
        "exits",
        "taps_forward",
        "taps_back",
        "carousel_album_reach",
        "carousel_album_impressions",
        "carousel_album_engagement",
    }
)
STORY_NAVIGATION_ACTIONS = ("tap_forward", "tap_back", "tap_exit", "swipe_forward")

IG_TIME_SERIES_METRICS = frozenset({"reach", "follower_count"})
IG_TOTAL_VALUE_METRICS = frozenset(
    {
        "views",
        "reach",
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
        "follows_and_unfollows",
    }
)
IG_DEPRECATED_ACCOUNT_METRICS = frozenset(
    {
        "impressions",
        "email_contacts",
        "get_directions_clicks",
        "phone_call_clicks",
        "text_message_clicks",
        "profile_views_unique",
    }
)

FB_POST_METRICS = frozenset(
    {
        "post_media_view",
        "post_total_media_view_unique",
        "post_clicks",
        "post_clicks_by_type",
        "post_reactions_by_type_total",
        "post_reactions_like_total",
        "post_video_views",
    }
)
FB_DEPRECATED_POST_METRICS = frozenset(
    {
        "post_impressions",
        "post_impressions_unique",
        "post_impressions_organic",
        "post_impressions_paid",
        "post_engaged_users",
        "post_negative_feedback",
        "post_impressions_organic_unique",
        "post_impressions_paid_unique",
    }
)
FB_PAGE_METRICS = frozenset(
    {
        "page_media_view",
        "page_total_media_view_unique",
        "page_views_total",
        "page_follows",
        "page_daily_follows",
        "page_daily_follows_unique",
        "page_daily_unfollows_unique",
        "page_post_engagements",
        "page_total_actions",
    }
)
FB_DEPRECATED_PAGE_METRICS = frozenset(
    {
        "page_impressions",
        "page_impressions_unique",
        "page_impressions_paid",
        "page_impressions_organic_unique_v2",
        "page_fans",
        "page_fan_adds",
        "page_fan_adds_unique",
        "page_fan_removes",
        "page_fan_removes_unique",
        "page_engaged_users",
        "page_consumptions",
    }
)
_CAPTIONS = ("Launch", "Behind the scenes", "Tips", "Café été", "Offer")
REACTION_TYPES = ("like", "love", "wow", "haha", "sorry", "anger")

IG_MEDIA_FIELDS = frozenset(
    {
        "id",
        "caption",
        "media_type",
        "media_product_type",
        "permalink",
        "timestamp",
        "like_count",
        "comments_count",
        "children",
        "thumbnail_url",
        "media_url",
        "username",
        "shortcode",
        "is_comment_enabled",
        "owner",
    }
)
IG_USER_FIELDS = frozenset(
    {
        "id",
        "username",
        "name",
        "followers_count",
        "follows_count",
        "media_count",
        "biography",
        "website",
        "profile_picture_url",
        "ig_id",
    }
)
FB_POST_FIELDS = frozenset(
    {
        "id",
        "message",
        "created_time",
        "updated_time",
        "permalink_url",
        "status_type",
        "full_picture",
        "shares",
        "comments",
        "reactions",
        "is_published",
        "from",
        "insights",
    }
)
FB_PAGE_FIELDS = frozenset(
    {
        "id",
        "name",
        "access_token",
        "category",
        "followers_count",
        "fan_count",
        "link",
        "instagram_business_account",
    }
)


class OrganicError(Exception):
    """A Graph error to answer with (code, message, subcode, user title/message)."""

    def __init__(
        self,
        code: int,
        message: str,
        subcode: int | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode = code, message, subcode
        self.user_title, self.user_msg, self.status = user_title, user_msg, status


# ----------------------------------------------------------------------------- data
@dataclass
class Post:
    """One IG media (incl. stories and carousel children) or one Page post."""

    id: str
    account_id: str
    platform: str  # instagram | facebook
    media_type: str
    product_type: str
    posted_at: datetime
    reach_final: float
    tau_hours: float
    view_ratio: float
    watch_ms: int
    caption: str
    children: list[str] = field(default_factory=list)
    parent_id: str | None = None
    no_insights: str | None = None  # "conversion" | "viewers" | None


@dataclass
class IgAccount:
    id: str
    username: str
    name: str
    page_id: str | None
    converted_at: datetime  # business conversion: older media have no insights
    followers: int
    media: list[Post] = field(default_factory=list)  # feed media, newest first
    stories: list[Post] = field(default_factory=list)  # newest first


@dataclass
class Page:
    id: str
    name: str
    token: str
    followers: int
    ig_account_id: str | None = None
    posts: list[Post] = field(default_factory=list)  # newest first


class OrganicState:
    """Everything the organic domain holds for one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.seed = sandbox.domain_seed(DOMAIN)
        self.ig_accounts: dict[str, IgAccount] = {}
        self.pages: dict[str, Page] = {}
        self.posts: dict[str, Post] = {}
        self.page_tokens: dict[str, str] = {}  # Page token → page id
        #: pages whose Page token the user token cannot obtain (extra["fb_page_token_denied"])
        self.token_denied: set[str] = set()
        self.anchor = sandbox.now().replace(minute=0, second=0, microsecond=0)

    def knob(self, name: str, default: int) -> int:
        value = self.sandbox.config.extra.get(name, default)
        return int(value)

    def build(self) -> None:
        """Generate pages, IG accounts, media, stories and posts from the seed."""
        rng = self.sandbox.rng(DOMAIN)
        n_ig = self.knob("ig_accounts", 2)
        n_media = self.knob("ig_media_per_account", 40)
        stories_per_day = self.knob("ig_stories_per_day", 2)
        n_pages = self.knob("fb_pages", 2)
        n_posts = self.knob("fb_posts_per_page", 30)
        days = self.knob("organic_days", 120)
        span = timedelta(days=days)
        base = 1_000 + self.sandbox.config.seed % 1000
        for p in range(n_pages):
            page_id = str(110_000_000_000_000 + base * 100 + p)
            token = (
                "EAAPAGE" + hashlib.sha256(f"{self.seed}:page:{page_id}".encode()).hexdigest()[:40]
            )
            page = Page(
                page_id, f"EverReach Page {p + 1}", token, followers=rng.randint(2_000, 60_000)
            )
            self.pages[page_id] = page
            self.page_tokens[token] = page_id
            for i in range(n_posts):
                age = span * (i + rng.random()) / max(n_posts, 1)
                post = self._post(
                    rng,
                    f"{page_id}_{120_000_000_000_000 + i}",
                    page_id,
                    "facebook",
                    rng.choice(["PHOTO", "VIDEO", "STATUS", "LINK"]),
                    "FEED",
                    self.anchor - age,
                )
                page.posts.append(post)
        page_ids = list(self.pages)
        for index in self.sandbox.config.extra.get("fb_page_token_denied", ()):
            if 0 <= int(index) < len(page_ids):
                self.token_denied.add(page_ids[int(index)])
        media_seq = 17_900_000_000_000_000 + base * 1_000_000
        for a in range(n_ig):
            ig_id = str(17_841_400_000_000_000 + base * 100 + a)
            # The first account has been a business account for years; the others were
            # converted 90 % of the way through the window, so their oldest media fail.
            converted = (
                self.anchor - timedelta(days=3 * 365) if a == 0 else self.anchor - span * 0.9
            )
            page_id = page_ids[a % len(page_ids)] if page_ids else None
            acct = IgAccount(
                ig_id,
                f"everreach_{a + 1}",
                f"EverReach IG {a + 1}",
                page_id,
                converted,
                followers=rng.randint(1_000, 90_000),
            )
            if page_id is not None and self.pages[page_id].ig_account_id is None:
                self.pages[page_id].ig_account_id = ig_id
            self.ig_accounts[ig_id] = acct
            for i in range(n_media):
                age = span * (i + rng.random()) / max(n_media, 1)
                kind = rng.choices(
                    [
                        ("IMAGE", "FEED"),
                        ("CAROUSEL_ALBUM", "FEED"),
                        ("VIDEO", "FEED"),
                        ("VIDEO", "REELS"),
                    ],
                    [40, 20, 10, 30],
                )[0]
                media_seq += 1
                post = self._post(
                    rng, str(media_seq), ig_id, "instagram", kind[0], kind[1], self.anchor - age
                )
                if post.posted_at < converted:
                    post.no_insights = "conversion"
                if kind[0] == "CAROUSEL_ALBUM":
                    for _ in range(rng.randint(2, 4)):
                        media_seq += 1
                        child = self._post(
                            rng,
                            str(media_seq),
                            ig_id,
                            "instagram",
                            rng.choice(["IMAGE", "VIDEO"]),
                            "FEED",
                            post.posted_at,
                        )
                        child.parent_id = post.id
                        post.children.append(child.id)
                        self.posts[child.id] = child
                acct.media.append(post)
            for i in range(days * stories_per_day):
                age = timedelta(days=1) * (i + rng.random()) / max(stories_per_day, 1)
                media_seq += 1
                story = self._post(
                    rng,
                    str(media_seq),
                    ig_id,
                    "instagram",
                    rng.choice(["IMAGE", "VIDEO"]),
                    "STORY",
                    self.anchor - age,
                )
                story.tau_hours = rng.uniform(2, 8)
                acct.stories.append(story)
            for post in acct.media + acct.stories:
                self.posts[post.id] = post
        for page in self.pages.values():
            for post in page.posts:
                self.posts[post.id] = post

    def _post(
        self,
        rng: Any,
        post_id: str,
        account_id: str,
        platform: str,
        media_type: str,
        product_type: str,
        posted_at: datetime,
    ) -> Post:
        reach = rng.lognormvariate(7.0, 1.1)
        post = Post(
            post_id,
            account_id,
            platform,
            media_type,
            product_type,
            posted_at,
            reach_final=reach,
            tau_hours=rng.uniform(12, 96),
            view_ratio=rng.uniform(1.1, 2.6),
            watch_ms=rng.randint(2_500, 19_000),
            caption=f"{_CAPTIONS[rng.randrange(len(_CAPTIONS))]} #{post_id[-4:]}",
        )
        # A few media with tiny audiences: Meta refuses their insights.
        if reach < 120 and platform == "instagram" and product_type != "STORY":
            post.no_insights = "viewers"
        return post

    # ------------------------------------------------------------------ counters
    def progress(self, post: Post, at: datetime) -> float:
        """How much of its lifetime audience a post has at ``at`` (monotonic, ≥ 0)."""
        hours = max((at - post.posted_at).total_seconds() / 3600.0, 0.0)
        # Saturating growth plus a slow tail (old posts keep earning a trickle).
        return (1.0 - math.exp(-hours / post.tau_hours)) + 0.0005 * hours / 24.0

    def counters(self, post: Post, at: datetime) -> dict[str, Any]:
        """Every lifetime counter of ``post`` at ``at`` (integers; breakdowns as dicts).

        Like Meta's, counters are refreshed in batches: they move once an hour, so two
        reads in the same hour agree.
        """
        g = self.progress(post, at.replace(minute=0, second=0, microsecond=0))
        reach = int(post.reach_final * g)
        views = int(post.reach_final * post.view_ratio * g)
        likes = int(post.reach_final * 0.06 * g)
        comments = int(post.reach_final * 0.007 * g)
        shares = int(post.reach_final * 0.004 * g)
        saved = int(post.reach_final * 0.009 * g)
        replies = int(post.reach_final * 0.003 * g)
        nav = {
            a: int(post.reach_final * r * g)
            for a, r in zip(STORY_NAVIGATION_ACTIONS, (0.8, 0.08, 0.12, 0.2), strict=True)
        }
        reactions = {
            t: int(post.reach_final * r * g)
            for t, r in zip(REACTION_TYPES, (0.05, 0.012, 0.003, 0.004, 0.001, 0.0005), strict=True)
        }
        clicks = int(post.reach_final * 0.03 * g)
        interactions = likes + comments + shares + saved
        return {
            "views": views,
            "reach": reach,
            "likes": likes,
            "comments": comments,
            "shares": shares,
            "saved": saved,
            "replies": replies,
            "total_interactions": interactions + (replies if post.product_type == "STORY" else 0),
            "profile_visits": int(post.reach_final * 0.011 * g),
            "follows": int(post.reach_final * 0.002 * g),
            "profile_activity": int(post.reach_final * 0.013 * g),
            "navigation": nav,
            "ig_reels_avg_watch_time": post.watch_ms if views else 0,
            "ig_reels_video_view_total_time": post.watch_ms * views,
            "post_media_view": views,
            "post_total_media_view_unique": reach,
            "post_video_views": int(views * 0.4) if post.media_type == "VIDEO" else 0,
            "post_clicks": clicks,
            "post_clicks_by_type": {
                "link clicks": clicks // 2,
                "photo view": clicks // 3,
                "other clicks": clicks - clicks // 2 - clicks // 3,
            },
            "post_reactions_by_type_total": {k: v for k, v in reactions.items() if v},
            "post_reactions_like_total": reactions["like"],
            "reactions_total": sum(reactions.values()),
        }

    def account_day(self, account_id: str, metric: str, day: date, scale: float) -> int:
        """A stable daily account metric: the same (account, metric, day) → same value."""
        digest = hashlib.blake2b(
            f"{self.seed}:{account_id}:{metric}:{day}".encode(), digest_size=8
        ).digest()
        frac = int.from_bytes(digest, "big") / 2**64
        return int(scale * (0.6 + 0.8 * frac))


# ----------------------------------------------------------------------------- helpers
def _fields(params: dict, default: str) -> list[tuple[str, dict[str, str], list[str]]]:
    raw = params.get("fields") or default
    return [parse_field(f) for f in split_fields(str(raw))]


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _parse_time(value: Any, name: str) -> datetime:
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise OrganicError(100, f"(#100) The parameter {name} is not a valid time: {text}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _metrics_param(sandbox: Sandbox, params: dict) -> list[str]:
    metrics = sandbox.list_param(params, "metric")
    if not metrics:
        raise OrganicError(100, "(#100) The parameter metric is required")
    return metrics


# ----------------------------------------------------------------------------- renderers
def _render_media(state: OrganicState, post: Post, fields: list, at: datetime) -> dict:
    acct = state.ig_accounts[post.account_id]
    counters = state.counters(post, at)
    body: dict[str, Any] = {}
    for name, _mods, sub in fields:
        if name not in IG_MEDIA_FIELDS:
            raise OrganicError(
                100,
                f"(#100) Tried accessing nonexisting field ({name}) on node type (ShadowIGMedia)",
            )
        if name == "id":
            body["id"] = post.id
        elif name == "caption" and post.parent_id is None:
            body["caption"] = post.caption
        elif name == "media_type":
            body["media_type"] = post.media_type
        elif name == "media_product_type":
            body["media_product_type"] = post.product_type
        elif name in ("permalink", "shortcode"):
            code = hashlib.md5(post.id.encode()).hexdigest()[:11]  # noqa: S324 (not security)
            kind = (
                "reel"
                if post.product_type == "REELS"
                else ("stories/" + acct.username if post.product_type == "STORY" else "p")
            )
            body[name] = (
                code if name == "shortcode" else f"https://www.instagram.com/{kind}/{code}/"
            )
        elif name == "timestamp":
            body["timestamp"] = _ts(post.posted_at)
        elif name == "like_count" and post.product_type != "STORY":
            body["like_count"] = counters["likes"]
        elif name == "comments_count" and post.product_type != "STORY":
            body["comments_count"] = counters["comments"]
        elif name == "media_url":
            body["media_url"] = f"https://scontent.sandbox.invalid/{post.id}.jpg"
        elif name == "thumbnail_url" and post.media_type == "VIDEO":
            body["thumbnail_url"] = f"https://scontent.sandbox.invalid/{post.id}_t.jpg"
        elif name == "username":
            body["username"] = acct.username
        elif name == "is_comment_enabled":
            body["is_comment_enabled"] = True
        elif name == "owner":
            body["owner"] = {"id": acct.id}
        elif name == "children" and post.children:
            sub_fields = [parse_field(f) for f in (sub or ["id"])]
            body["children"] = {
                "data": [
                    _render_media(state, state.posts[c], sub_fields, at) for c in post.children
                ]
            }
    return body


def _render_fb_post(state: OrganicState, post: Post, fields: list, at: datetime) -> dict:
    counters = state.counters(post, at)
    body: dict[str, Any] = {}
    for name, mods, _sub in fields:
        if name not in FB_POST_FIELDS:
            raise OrganicError(
                100, f"(#100) Tried accessing nonexisting field ({name}) on node type (PagePost)"
            )
        if name == "id":
            body["id"] = post.id
        elif name == "message":
            body["message"] = post.caption
        elif name in ("created_time", "updated_time"):
            body[name] = _ts(post.posted_at)
        elif name == "permalink_url":
            body[name] = f"https://www.facebook.com/{post.id.replace('_', '/posts/')}"
        elif name == "status_type":
            body[name] = {
                "PHOTO": "added_photos",
                "VIDEO": "added_video",
                "STATUS": "mobile_status_update",
                "LINK": "shared_story",
            }[post.media_type]
        elif name == "full_picture" and post.media_type in ("PHOTO", "VIDEO", "LINK"):
            body[name] = f"https://scontent.sandbox.invalid/{post.id}.jpg"
        elif name == "shares" and counters["shares"]:
            body["shares"] = {"count": counters["shares"]}  # absent when 0, like Meta
        elif name in ("comments", "reactions"):
            total = counters["comments"] if name == "comments" else counters["reactions_total"]
            edge: dict[str, Any] = {"data": []}
            if mods.get("summary") in ("true", "1", "total_count"):
                edge["summary"] = {"total_count": total}
            body[name] = edge
        elif name == "is_published":
            body[name] = True
        elif name == "from":
            body[name] = {"id": post.account_id, "name": state.pages[post.account_id].name}
        elif name == "insights":
            # Field expansion: ``insights.metric(a,b)`` — same rules as the /insights edge.
            metrics = [m.strip() for m in mods.get("metric", "").split(",") if m.strip()]
            if not metrics:
                raise OrganicError(100, "(#100) The parameter metric is required")
            _check_fb_metrics(metrics, FB_POST_METRICS, FB_DEPRECATED_POST_METRICS)
            body["insights"] = {
                "data": [_insight(m, "lifetime", counters[m], post.id) for m in metrics]
            }
    return body


# ----------------------------------------------------------------------------- handlers
def register(sandbox: Sandbox) -> None:
    """Create the seeded organic data and register every page, account and media node."""
    module = sys.modules[__name__]
    state = OrganicState(sandbox)
    state.build()
    sandbox.domains[DOMAIN] = state
    for page in state.pages.values():
        sandbox.register_node(page.id, "fb_page", module)
    for acct in state.ig_accounts.values():
        sandbox.register_node(acct.id, "ig_user", module)
    for post in state.posts.values():
        kind = (
            "fb_post"
            if post.platform == "facebook"
            else ("ig_child" if post.parent_id else "ig_media")
        )
        sandbox.register_node(post.id, kind, module)
    if sandbox.config.valid_tokens is not None:
        # Page tokens the sandbox hands out must pass the core's token check.
        sandbox.config.valid_tokens.update(state.page_tokens)


def usage_scope(
    sandbox: Sandbox, node_id: str, kind: str, edge: str | None, method: str
) -> UsageScope | None:
    """Whose rate-limit budget a call uses: the Page or the Instagram account it reads."""
    state: OrganicState = sandbox.domains[DOMAIN]
    owner = node_id
    if kind in ("ig_media", "ig_child", "fb_post"):
        owner = state.posts[node_id].account_id
    if kind in ("ig_user", "ig_media", "ig_child"):
        return UsageScope(owner, "instagram", ad_account=False)
    return UsageScope(owner, "pages", ad_account=False)


def handle(
    request: Request, sandbox: Sandbox, node_id: str, kind: str, edge: str | None
) -> Response:
    """Answer one organic Graph call (see the module docstring for the rules)."""
    state: OrganicState = sandbox.domains[DOMAIN]
    params = request.state.params
    now = sandbox.now()
    try:
        if kind == "ig_user":
            return _handle_ig_user(request, sandbox, state, state.ig_accounts[node_id], edge, now)
        if kind in ("ig_media", "ig_child"):
            post = state.posts[node_id]
            if edge is None:
                return sandbox.json_response(_render_media(state, post, _fields(params, "id"), now))
            if edge == "insights":
                return sandbox.json_response(_ig_media_insights(sandbox, state, post, params, now))
            if edge == "children" and post.children:
                fields = _fields(params, "id")
                return sandbox.page(
                    request,
                    [_render_media(state, state.posts[c], fields, now) for c in post.children],
                )
        if kind == "fb_page":
            return _handle_page(request, sandbox, state, state.pages[node_id], edge, now)
        if kind == "fb_post":
            post = state.posts[node_id]
            _require_page_token(request, state, post.account_id)
            if edge is None:
                return sandbox.json_response(
                    _render_fb_post(state, post, _fields(params, "id,created_time"), now)
                )
            if edge == "insights":
                return sandbox.json_response(_fb_post_insights(sandbox, post, state, params, now))
    except OrganicError as exc:
        return sandbox.error_response(
            exc.code,
            exc.message,
            subcode=exc.subcode,
            status=exc.status,
            user_title=exc.user_title,
            user_msg=exc.user_msg,
        )
    return sandbox.unknown_node_response(f"{node_id}/{edge}" if edge else node_id, request.method)


def _handle_ig_user(
    request: Request,
    sandbox: Sandbox,
    state: OrganicState,
    acct: IgAccount,
    edge: str | None,
    now: datetime,
) -> Response:
    params = request.state.params
    if edge is None:
        body: dict[str, Any] = {}
        for name, _m, _s in _fields(params, "id,username"):
            if name not in IG_USER_FIELDS:
                raise OrganicError(
                    100, f"(#100) Tried accessing nonexisting field ({name}) on node type (IGUser)"
                )
            body[name] = {
                "id": acct.id,
                "ig_id": int(acct.id[-8:]),
                "username": acct.username,
                "name": acct.name,
                "followers_count": acct.followers,
                "follows_count": 150,
                "media_count": len(acct.media),
                "biography": "EverReach sandbox account",
                "website": "https://everreach.invalid",
                "profile_picture_url": "https://scontent.sandbox.invalid/p.jpg",
            }[name]
        return sandbox.json_response(body)
    if edge in ("media", "stories"):
        fields = _fields(params, "id")
        if edge == "media":
            rows: list[Post] = [p for p in acct.media if p.posted_at <= now]
        else:
            rows = [p for p in acct.stories if now - STORY_LIFETIME < p.posted_at <= now]
        return sandbox.page(
            request,
            _RenderedPosts(
                state,
                rows,
                fields,
                now,
                allowed=IG_MEDIA_FIELDS,
                node_type="ShadowIGMedia",
                render=_render_media,
            ),
            default_limit=25,
            max_limit=100,
        )
    if edge == "insights":
        return sandbox.json_response(_ig_user_insights(sandbox, state, acct, params, now))
    raise OrganicError(100, f"(#100) Unknown edge {edge} on IGUser")


class _RenderedPosts:
    """A lazily rendered list of IG media or Page posts for :meth:`Sandbox.page`."""

    def __init__(
        self,
        state: OrganicState,
        posts: list[Post],
        fields: list,
        at: datetime,
        *,
        allowed: Any,
        node_type: str,
        render: Any,
    ) -> None:
        self.state, self.posts, self.fields, self.at = state, posts, fields, at
        self.render = render
        # Validate the field list once, even for an empty page.
        for name, _m, _s in fields:
            if name not in allowed:
                raise OrganicError(
                    100,
                    f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})",
                )

    def __len__(self) -> int:
        return len(self.posts)

    def __getitem__(self, item: slice) -> list[dict]:
        return [self.render(self.state, p, self.fields, self.at) for p in self.posts[item]]


def _insight(name: str, period: str, value: Any, node_id: str) -> dict:
    return {
        "name": name,
        "period": period,
        "values": [{"value": value}],
        "title": name.replace("_", " ").capitalize(),
        "description": f"Sandbox {name}",
        "id": f"{node_id}/insights/{name}/{period}",
    }


def _ig_media_insights(
    sandbox: Sandbox, state: OrganicState, post: Post, params: dict, now: datetime
) -> dict:
    metrics = _metrics_param(sandbox, params)
    if post.parent_id is not None:
        raise OrganicError(10, "(#10) Insights are not available for media within a carousel album")
    valid = IG_VALID_METRICS[(post.media_type, post.product_type)]
    for i, m in enumerate(metrics):
        if m in IG_DEPRECATED_MEDIA_METRICS:
            raise OrganicError(
                100,
                f"(#100) Starting from v22.0, the {m} metric is no "
                f"longer supported (metric[{i}]={m}). Use views instead.",
            )
        if m not in valid:
            raise OrganicError(
                100,
                f"(#100) The Media Insights API does not support the {m} "
                f"metric for this media product type "
                f"({post.media_type}/{post.product_type}).",
            )
    if post.no_insights == "conversion":
        raise OrganicError(
            100,
            "Invalid parameter",
            subcode=2108006,
            user_title="Media Posted Before Business Account Conversion",
            user_msg="The media was posted before the most recent time that the user's "
            "account was converted to a business account from a personal account.",
        )
    if post.no_insights == "viewers":
        raise OrganicError(10, "(#10) Not enough viewers for the media to show insights")
    if post.product_type == "STORY" and now - post.posted_at >= STORY_LIFETIME:
        return {"data": []}  # Meta: story insights vanish after 24 h (empty, not an error)
    counters = state.counters(post, now)
    data = []
    for m in metrics:
        if m == "navigation":
            nav = counters["navigation"]
            item = _insight(m, "lifetime", sum(nav.values()), post.id)
            if params.get("breakdown") == "story_navigation_action_type":
                item["total_value"] = {
                    "value": sum(nav.values()),
                    "breakdowns": [
                        {
                            "dimension_keys": ["story_navigation_action_type"],
                            "results": [
                                {"dimension_values": [k], "value": v} for k, v in nav.items()
                            ],
                        }
                    ],
                }
            data.append(item)
        else:
            data.append(_insight(m, "lifetime", counters[m], post.id))
    return {"data": data}


def _ig_user_insights(
    sandbox: Sandbox, state: OrganicState, acct: IgAccount, params: dict, now: datetime
) -> dict:
    metrics = _metrics_param(sandbox, params)
    period = params.get("period", "day")
    if period != "day":
        raise OrganicError(
            100, f"(#100) period must be one of the following values: day (got {period})"
        )
    total_value = params.get("metric_type") == "total_value"
    for i, m in enumerate(metrics):
        if m in IG_DEPRECATED_ACCOUNT_METRICS:
            raise OrganicError(
                100,
                f"(#100) Starting from v22.0, the {m} metric is no longer "
                f"supported (metric[{i}]={m}).",
            )
        if m not in IG_TIME_SERIES_METRICS | IG_TOTAL_VALUE_METRICS:
            raise OrganicError(100, f"(#100) metric[{i}] must be a valid insights metric, got {m}")
    if total_value:
        bad = [m for m in metrics if m not in IG_TOTAL_VALUE_METRICS]
        if bad:
            raise OrganicError(
                100,
                f"(#100) The following metrics ({', '.join(bad)}) do not "
                "support metric_type=total_value",
            )
    else:
        bad = [m for m in metrics if m not in IG_TIME_SERIES_METRICS]
        if bad:
            raise OrganicError(
                100,
                f"(#100) The following metrics ({', '.join(bad)}) should "
                "be specified with parameter metric_type=total_value",
            )
    today = now.astimezone(UTC).date()
    until = _parse_time(params["until"], "until") if params.get("until") else now
    since = (
        _parse_time(params["since"], "since") if params.get("since") else until - timedelta(days=2)
    )
    if until < since:
        raise OrganicError(100, "(#100) since must be before until")
    if until - since > timedelta(days=IG_MAX_RANGE_DAYS):
        raise OrganicError(
            100,
            f"(#100) The time range between since and until can't be "
            f"longer than {IG_MAX_RANGE_DAYS} days",
        )
    if "follower_count" in metrics and since.date() < today - timedelta(
        days=IG_FOLLOWER_COUNT_DAYS
    ):
        raise OrganicError(
            100,
            "(#100) follower_count metric only supports querying data "
            f"for the last {IG_FOLLOWER_COUNT_DAYS} days",
        )
    first = since.astimezone(UTC).date()
    last = min(
        (until - timedelta(seconds=1)).astimezone(UTC).date(), today - timedelta(days=1)
    )  # today has no complete value yet
    days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    scale = acct.followers / 10.0
    scales = {
        "reach": scale,
        "views": scale * 2.4,
        "accounts_engaged": scale * 0.08,
        "total_interactions": scale * 0.12,
        "likes": scale * 0.09,
        "comments": scale * 0.01,
        "shares": scale * 0.006,
        "saves": scale * 0.008,
        "replies": scale * 0.004,
        "profile_views": scale * 0.05,
        "website_clicks": scale * 0.01,
        "profile_links_taps": scale * 0.012,
        "follows_and_unfollows": scale * 0.006,
        "follower_count": scale * 0.005,
    }
    data = []
    for m in metrics:
        if total_value:
            value = sum(state.account_day(acct.id, m, d, scales[m]) for d in days)
            data.append(
                {
                    "name": m,
                    "period": "day",
                    "title": m,
                    "description": f"Sandbox {m}",
                    "total_value": {"value": value},
                    "id": f"{acct.id}/insights/{m}/day",
                }
            )
        else:
            values = [
                {
                    "value": state.account_day(acct.id, m, d, scales[m]),
                    "end_time": _ts(
                        datetime.combine(d + timedelta(days=1), datetime.min.time(), UTC)
                    ),
                }
                for d in days
            ]
            data.append(
                {
                    "name": m,
                    "period": "day",
                    "values": values,
                    "title": m,
                    "description": f"Sandbox {m}",
                    "id": f"{acct.id}/insights/{m}/day",
                }
            )
    return {"data": data}


def _require_page_token(request: Request, state: OrganicState, page_id: str) -> None:
    token = getattr(request.state, "token", None)
    if state.page_tokens.get(token or "") != page_id:
        raise OrganicError(
            210,
            "(#210) A page access token is required to request this "
            "resource. This endpoint requires a Page access token.",
            status=400,
        )


def _handle_page(
    request: Request,
    sandbox: Sandbox,
    state: OrganicState,
    page: Page,
    edge: str | None,
    now: datetime,
) -> Response:
    params = request.state.params
    if edge is None:
        body: dict[str, Any] = {}
        for name, _m, _s in _fields(params, "id,name"):
            if name not in FB_PAGE_FIELDS:
                raise OrganicError(
                    100, f"(#100) Tried accessing nonexisting field ({name}) on node type (Page)"
                )
            if name == "instagram_business_account":
                if page.ig_account_id:
                    body[name] = {"id": page.ig_account_id}
                continue
            if name == "access_token" and page.id in state.token_denied:
                continue  # the user has no task on this Page: Meta leaves the field out
            body[name] = {
                "id": page.id,
                "name": page.name,
                "access_token": page.token,
                "category": "Brand",
                "followers_count": page.followers,
                "fan_count": page.followers,
                "link": f"https://www.facebook.com/{page.id}",
            }[name]
        return sandbox.json_response(body)
    _require_page_token(request, state, page.id)
    if edge in ("posts", "published_posts", "feed"):
        fields = _fields(params, "id,created_time,message")
        rows = [p for p in page.posts if p.posted_at <= now]
        return sandbox.page(
            request,
            _RenderedPosts(
                state,
                rows,
                fields,
                now,
                allowed=FB_POST_FIELDS,
                node_type="PagePost",
                render=_render_fb_post,
            ),
            default_limit=25,
            max_limit=100,
        )
    if edge == "insights":
        return sandbox.json_response(_page_insights(sandbox, state, page, params, now))
    raise OrganicError(100, f"(#100) Unknown edge {edge} on Page")


def _check_fb_metrics(
    metrics: list[str], valid: frozenset[str], deprecated: frozenset[str]
) -> None:
    for i, m in enumerate(metrics):
        if m in deprecated:
            raise OrganicError(
                100,
                f"(#100) The value must be a valid insights metric: {m} "
                f"(metric[{i}]) is deprecated",
            )
        if m not in valid:
            raise OrganicError(
                100, f"(#100) The value must be a valid insights metric: {m} (metric[{i}])"
            )


def _fb_post_insights(
    sandbox: Sandbox, post: Post, state: OrganicState, params: dict, now: datetime
) -> dict:
    metrics = _metrics_param(sandbox, params)
    _check_fb_metrics(metrics, FB_POST_METRICS, FB_DEPRECATED_POST_METRICS)
    counters = state.counters(post, now)
    return {"data": [_insight(m, "lifetime", counters[m], post.id) for m in metrics]}


def _page_insights(
    sandbox: Sandbox, state: OrganicState, page: Page, params: dict, now: datetime
) -> dict:
    metrics = _metrics_param(sandbox, params)
    _check_fb_metrics(metrics, FB_PAGE_METRICS, FB_DEPRECATED_PAGE_METRICS)
    period = params.get("period", "day")
    if period != "day":
        raise OrganicError(100, f"(#100) period must be one of: day (got {period})")
    until = _parse_time(params["until"], "until") if params.get("until") else now
    since = (
        _parse_time(params["since"], "since") if params.get("since") else until - timedelta(days=2)
    )
    if until < since:
        raise OrganicError(100, "(#100) since must be before until")
    if until - since > timedelta(days=PAGE_MAX_RANGE_DAYS):
        raise OrganicError(
            100, "(#100) There cannot be more than 90 days (7776000 s) between since and until"
        )
    today = now.astimezone(UTC).date()
    first = since.astimezone(UTC).date()
    last = min((until - timedelta(seconds=1)).astimezone(UTC).date(), today - timedelta(days=1))
    days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    scale = page.followers / 10.0
    data = []
    for m in metrics:
        values = []
        for d in days:
            if m == "page_follows":
                # Lifetime follower total on that day: grows with the daily net follows.
                age = (today - d).days
                value = page.followers - age * int(scale * 0.004)
            else:
                factor = {
                    "page_media_view": 3.0,
                    "page_total_media_view_unique": 1.2,
                    "page_views_total": 0.05,
                    "page_daily_follows": 0.006,
                    "page_daily_follows_unique": 0.005,
                    "page_daily_unfollows_unique": 0.001,
                    "page_post_engagements": 0.15,
                    "page_total_actions": 0.02,
                }[m]
                value = state.account_day(page.id, m, d, scale * factor)
            values.append(
                {
                    "value": max(value, 0),
                    "end_time": _ts(
                        datetime.combine(d + timedelta(days=1), datetime.min.time(), UTC)
                    ),
                }
            )
        data.append(
            {
                "name": m,
                "period": "day",
                "values": values,
                "title": m,
                "description": f"Sandbox {m}",
                "id": f"{page.id}/insights/{m}/day",
            }
        )
    return {"data": data}


# ----------------------------------------------------------------------------- batch API
def extra_routes(sandbox: Sandbox) -> list[Route]:
    """The Graph batch endpoint (``POST /`` and ``POST /{version}/``)."""

    async def batch(request: Request) -> Response:
        return await _batch(request, sandbox)

    async def accounts(request: Request) -> Response:
        # Control route: what the demo registers in meta_platform_config.
        state: OrganicState = sandbox.domains[DOMAIN]
        return sandbox.json_response(
            {
                "instagram_accounts": [
                    {"id": a.id, "name": a.name, "username": a.username, "page_id": a.page_id}
                    for a in state.ig_accounts.values()
                ],
                "facebook_pages": [
                    {"id": p.id, "name": p.name, "instagram_account_id": p.ig_account_id}
                    for p in state.pages.values()
                ],
            }
        )

    return [
        Route("/_sandbox/organic/accounts", accounts, methods=["GET"]),
        Route("/", batch, methods=["POST"]),
        Route("/{version}/", batch, methods=["POST"]),
    ]


async def _batch(request: Request, sandbox: Sandbox) -> Response:
    started = time.monotonic()
    latency_ms = sandbox.draw_latency_ms()
    params = await read_params(request)
    version = request.path_params.get("version", CURRENT_VERSION)
    try:
        items = sandbox.json_param(params, "batch")
    except orjson.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not items:
        return sandbox.error_response(
            100, "(#100) The parameter batch is required and must be a JSON array"
        )
    if len(items) > BATCH_LIMIT:
        return sandbox.error_response(
            100, f"(#100) Too many requests in batch message. Maximum batch size is {BATCH_LIMIT}"
        )
    top_token = params.get("access_token")
    if not top_token:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith(("bearer ", "oauth ")):
            top_token = auth.split(" ", 1)[1].strip()
    results = []
    for item in items:
        if not isinstance(item, dict) or "relative_url" not in item:
            results.append(
                {
                    "code": 400,
                    "headers": [],
                    "body": orjson.dumps(
                        sandbox.error_body(100, "(#100) Each batch item needs a relative_url")
                    ).decode(),
                }
            )
            continue
        results.append(
            await _batch_item(
                request, sandbox, item, version, top_token, params.get("appsecret_proof")
            )
        )
    sandbox.stats["batch_requests"] += 1
    # The usage headers of the last item ride on the batch answer, as Meta's do, so the
    # client's throttle sees them.
    headers = {
        h["name"]: h["value"]
        for h in results[-1]["headers"]
        if h["name"] in ("x-app-usage", "x-business-use-case-usage")
    }
    response = sandbox.json_response(results, headers=headers)
    # One latency for the whole batch (its items do not each wait: see Sandbox.dispatch).
    await sandbox.wait_latency(started, sandbox.answer_ms(latency_ms, len(response.body)))
    return response


async def _batch_item(
    outer: Request, sandbox: Sandbox, item: dict, version: str, token: str | None, proof: str | None
) -> dict:
    method = str(item.get("method", "GET")).upper()
    split = urlsplit("/" + str(item["relative_url"]).lstrip("/"))
    parts = [p for p in split.path.split("/") if p]
    if parts and re.match(r"^v\d+\.\d+$", parts[0]):
        version, parts = parts[0], parts[1:]
    query = parse_qsl(split.query, keep_blank_values=True)
    names = {k for k, _ in query}
    if "access_token" not in names and token:
        query.append(("access_token", token))
    if "appsecret_proof" not in names and proof:
        query.append(("appsecret_proof", proof))
    if not parts or len(parts) > 2 or method != "GET":
        body = sandbox.error_body(
            100, f"(#100) Unsupported batch request: {method} {item['relative_url']}"
        )
        return {"code": 400, "headers": [], "body": orjson.dumps(body).decode()}
    path = f"/{version}/" + "/".join(parts)
    path_params = {"version": version, "node_id": parts[0]}
    if len(parts) == 2:
        path_params["edge"] = parts[1]
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(query).encode(),
        "headers": [],
        "scheme": "http",
        "server": outer.scope.get("server"),
        "client": outer.scope.get("client"),
        "root_path": "",
        "path_params": path_params,
        "app": outer.scope.get("app"),
        "everreach.batch_item": True,
    }

    async def _no_body() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    response = await sandbox.dispatch(Request(scope, _no_body))
    headers = [
        {"name": k, "value": v}
        for k, v in response.headers.items()
        if k.startswith("x-") or k in ("www-authenticate", "content-type")
    ]
    return {"code": response.status_code, "headers": headers, "body": bytes(response.body).decode()}
