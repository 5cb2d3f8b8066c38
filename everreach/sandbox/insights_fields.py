"""Values of the AdsInsights fields beyond the core metrics, derived from a row's numbers.

The sandbox generates a handful of integer metrics per ad and day (impressions, clicks, link
clicks, landing page views, spend in cents, reach, leads, purchases and their value by
attribution window). Every other field Meta's spec lists is derived from those with fixed,
documented ratios, so that the numbers on one row agree with each other (a CPC is spend over
clicks, a ROAS is purchase value over spend, unique counts never exceed their totals, video
fields appear only where the row has video ads).

Fields whose data the sandbox has no concept of (product catalogs, app installs and SKAdNetwork
postbacks, marketing messages, instant experiences, data-driven attribution) are accepted and
left out of the row, as Meta leaves out fields that have no value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from everreach.sandbox.insights_spec import FIELD_KINDS, REMOVED_AFTER_V19

#: Fields rendered by the core renderer (ids, names, dates and the core metrics).
CORE_FIELDS = frozenset(
    {
        "account_id",
        "account_name",
        "account_currency",
        "campaign_id",
        "campaign_name",
        "adset_id",
        "adset_name",
        "ad_id",
        "ad_name",
        "date_start",
        "date_stop",
        "objective",
        "spend",
        "impressions",
        "reach",
        "frequency",
        "clicks",
        "inline_link_clicks",
        "ctr",
        "cpc",
        "cpm",
        "actions",
        "action_values",
    }
)
#: Fields this module renders (every other spec field, except the removed ones).
EXTRA_FIELDS = frozenset(FIELD_KINDS) - CORE_FIELDS - frozenset(REMOVED_AFTER_V19)
#: Fields built on deduplicated people counts: Meta does not serve them with hourly
#: breakdowns (they are left out of those rows).
UNIQUE_FIELDS = frozenset(
    f
    for f in FIELD_KINDS
    if "unique" in f
    or f in ("reach", "frequency", "cpp", "estimated_ad_recallers", "estimated_ad_recall_rate")
    or f.startswith("advanced_reach")
    or f == "cost_per_estimated_ad_recallers"
)
#: Fields Meta refuses with an hourly breakdown ("video_* fields cannot be requested with
#: any hourly stats breakdowns"; full_view_reach fails the same way).
NOT_WITH_HOURLY = frozenset(f for f in FIELD_KINDS if "video" in f or "thruplay" in f) | {
    "full_view_reach"
}

OPTIMIZATION_GOAL = {
    "OUTCOME_SALES": "OFFSITE_CONVERSIONS",
    "OUTCOME_LEADS": "LEAD_GENERATION",
    "OUTCOME_TRAFFIC": "LANDING_PAGE_VIEWS",
    "OUTCOME_AWARENESS": "REACH",
    "OUTCOME_ENGAGEMENT": "POST_ENGAGEMENT",
}
RESULT_INDICATOR = {
    "OUTCOME_SALES": "actions:offsite_conversion.fb_pixel_purchase",
    "OUTCOME_LEADS": "actions:lead",
    "OUTCOME_TRAFFIC": "actions:landing_page_view",
    "OUTCOME_AWARENESS": "reach",
    "OUTCOME_ENGAGEMENT": "actions:link_click",
}
RANKINGS = ("ABOVE_AVERAGE", "AVERAGE", "BELOW_AVERAGE_35", "BELOW_AVERAGE_20", "BELOW_AVERAGE_10")
#: The share of a video's plays that reach each mark, and the play-curve points Meta
#: reports (seconds 0-15, then 20, 25, 30, 40, 50, 60).
VIDEO_MARKS = {
    "video_continuous_2_sec_watched_actions": 0.62,
    "video_15_sec_watched_actions": 0.21,
    "video_30_sec_watched_actions": 0.12,
    "video_thruplay_watched_actions": 0.19,
    "video_p25_watched_actions": 0.45,
    "video_p50_watched_actions": 0.3,
    "video_p75_watched_actions": 0.2,
    "video_p95_watched_actions": 0.13,
    "video_p100_watched_actions": 0.1,
}
VIDEO_SOUNDS = (("sound_on", 0.36), ("sound_off", 0.64))
VIDEO_TYPES = (("total", 1.0),)


@dataclass
class RowContext:
    """One insights row's numbers and what it describes (money in integer cents)."""

    impressions: int
    clicks: int
    link_clicks: int
    landing_page_views: int
    spend: int
    reach: int | None  # None where Meta leaves reach out (hourly breakdowns)
    leads: int
    purchases: int  # Meta's default window (7-day click + 1-day view)
    purchase_value: int
    video_share: float  # share of the row's impressions served by video ads
    level: str
    objective: str | None
    created: str | None  # YYYY-MM-DD of the row's object
    updated: str | None
    adset_start: str | None
    ranking_seed: int  # stable per object: its quality rankings
    creative_type: str | None  # ad level: IMAGE, VIDEO or CAROUSEL
    breakdown: dict[str, Any] = field(default_factory=dict)  # the row's breakdown values
    names: dict[str, str] = field(default_factory=dict)  # page / product names by id
    video_breakdowns: tuple[str, ...] = ()  # action_video_sound / action_video_type


def _money(cents: float) -> str:
    cents = int(round(cents))
    return f"{cents // 100}.{cents % 100:02d}"


def _ratio(num: float, den: float, scale: float = 1.0) -> str | None:
    return f"{num * scale / den:.6f}" if den else None


def _cost(spend_cents: int, count: float) -> str | None:
    return f"{spend_cents / 100 / count:.6f}" if count else None


def _stats(action_type: str, value: Any) -> list[dict] | None:
    if value in (None, 0, "0"):
        return None
    return [{"action_type": action_type, "value": value if isinstance(value, str) else str(value)}]


def _results(indicator: str, value: str | None) -> list[dict] | None:
    if value is None:
        return None
    return [{"indicator": indicator, "values": [{"value": value}]}]


def _video_entries(ctx: RowContext, count: int) -> list[dict] | None:
    """video_view entries, split by action_video_sound / action_video_type when asked."""
    if count <= 0:
        return None
    entries: list[dict] = [{"action_type": "video_view", "value": str(count)}]
    for name, shares in (("action_video_sound", VIDEO_SOUNDS), ("action_video_type", VIDEO_TYPES)):
        if name not in ctx.video_breakdowns:
            continue
        split: list[dict] = []
        for entry in entries:
            total = int(entry["value"])
            parts = _largest_remainder(total, [s for _, s in shares])
            for (label, _), n in zip(shares, parts, strict=True):
                if n:
                    split.append({name: label, **entry, "value": str(n)})
        entries = split
    return entries or None


def _largest_remainder(total: int, shares: list[float]) -> list[int]:
    """`total` split by `shares` into integers that add up to it exactly."""
    raw = [total * s / sum(shares) for s in shares]
    parts = [int(r) for r in raw]
    rest = total - sum(parts)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[:rest]:
        parts[i] += 1
    return parts


def extra_values(fields: list[str], ctx: RowContext) -> list[tuple[str, Any]]:
    """(field, value) for every field of `fields` (extra fields only) that has a value on
    this row, in the order given."""
    row = _Row(ctx)
    out = []
    for name in fields:
        value = row.value(name)
        if value is not None:
            out.append((name, value))
    return out


class _Row:
    """One row's derived numbers and the formulas of its extra fields."""

    def __init__(self, c: RowContext) -> None:
        self.c = c
        self.imps, self.clicks, self.link = c.impressions, c.clicks, c.link_clicks
        self.lpv, self.spend, self.reach = c.landing_page_views, c.spend, c.reach
        self.unique_clicks = self.clicks * 93 // 100
        self.unique_link = self.link * 95 // 100
        self.outbound = self.link * 97 // 100
        self.unique_outbound = self.outbound * 95 // 100
        self.engagement = self.link + self.imps * 6 // 1000
        self.plays = int(self.imps * 0.38 * c.video_share)
        self.recallers = (self.reach or 0) * 9 // 100
        self._simple: dict[str, Any] | None = None

    def value(self, name: str) -> Any:
        if self.reach is None and name in UNIQUE_FIELDS:
            return None  # hourly breakdowns: no people counts
        if self._simple is None:
            self._simple = self._simple_formulas()
        formula = self._simple.get(name)
        if formula is not None:
            return formula()
        return self._listed(name)

    def _simple_formulas(self) -> dict[str, Any]:
        """Counts and rates on the row (strings, like Meta's numbers)."""
        c = self.c
        imps, link, lpv, spend, reach = self.imps, self.link, self.lpv, self.spend, self.reach or 0
        uclicks, ulink, engagement = self.unique_clicks, self.unique_link, self.engagement
        recallers, plays = self.recallers, self.plays
        return {
            "cpp": lambda: _cost(spend, reach / 1000),
            "unique_clicks": lambda: str(uclicks),
            "unique_ctr": lambda: _ratio(uclicks, reach, 100),
            "cost_per_unique_click": lambda: _cost(spend, uclicks),
            "inline_link_click_ctr": lambda: _ratio(link, imps, 100),
            "cost_per_inline_link_click": lambda: _cost(spend, link),
            "unique_inline_link_clicks": lambda: str(ulink),
            "unique_inline_link_click_ctr": lambda: _ratio(ulink, reach, 100),
            "unique_link_clicks_ctr": lambda: _ratio(ulink, reach, 100),
            "cost_per_unique_inline_link_click": lambda: _cost(spend, ulink),
            "inline_post_engagement": lambda: str(engagement),
            "cost_per_inline_post_engagement": lambda: _cost(spend, engagement),
            "social_spend": lambda: "0.00",
            "full_view_impressions": lambda: str(imps * 22 // 100),
            "full_view_reach": lambda: str(reach * 25 // 100),
            "estimated_ad_recallers": lambda: str(recallers),
            "estimated_ad_recall_rate": lambda: _ratio(recallers, reach, 100),
            "cost_per_estimated_ad_recallers": lambda: _cost(spend, recallers),
            "advanced_reach_1d_lookback": lambda: str(reach),
            "advanced_reach_7d_lookback": lambda: str(reach * 14 // 10),
            "advanced_reach_28d_lookback": lambda: str(reach * 21 // 10),
            "instagram_profile_visits": lambda: str(imps * 8 // 10000),
            "instagram_upcoming_event_reminders_set": lambda: "0",
            "landing_page_view_actions_per_link_click": lambda: _ratio(lpv, link),
            "landing_page_view_per_link_click": lambda: _ratio(lpv, link),
            "landing_page_view_per_purchase_rate": lambda: _ratio(lpv, c.purchases),
            "purchase_per_landing_page_view": lambda: _ratio(c.purchases, lpv),
            "purchases_per_link_click": lambda: _ratio(c.purchases, link),
            "product_views": lambda: str(lpv * 6 // 10),
            "auction_bid": lambda: _cost(spend, imps / 1000 / 1.1) if imps else None,
            "auction_max_competitor_bid": lambda: _cost(spend, imps / 1000 / 1.3) if imps else None,
            "auction_competitiveness": lambda: "0.420000" if imps else None,
            "wish_bid": lambda: _cost(spend, imps / 1000 / 0.9) if imps else None,
            "buying_type": lambda: "AUCTION",
            "optimization_goal": lambda: OPTIMIZATION_GOAL.get(c.objective or ""),
            "attribution_setting": lambda: "7d_click_1d_view",
            "multi_event_conversion_attribution_setting": lambda: "7d_click_1d_view",
            "created_time": lambda: c.created,
            "updated_time": lambda: c.updated,
            "adset_start": lambda: c.adset_start,
            "creative_media_type": lambda: c.creative_type,
            "video_view_per_impression": lambda: _stats("video_view", _ratio(plays, imps)),
            "place_page_name": lambda: c.names.get(str(c.breakdown.get("place_page_id"))),
            "product_retailer_id": lambda: c.names.get(f"retailer:{c.breakdown.get('product_id')}"),
            "product_group_retailer_id": lambda: c.names.get(
                f"retailer:{c.breakdown.get('product_group_content_id_breakdown')}"
            ),
        }

    def _listed(self, name: str) -> Any:  # noqa: C901 - one table of formulas
        """Rankings, action stats, video and result-indicator fields."""
        c = self.c
        imps, clicks, link, lpv, spend = self.imps, self.clicks, self.link, self.lpv, self.spend
        reach, plays = self.reach or 0, self.plays
        if name in ("quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking"):
            if c.level != "ad":
                return None
            if imps < 500:  # Meta ranks ads with at least 500 impressions only
                return "UNKNOWN"
            offset = {"quality_ranking": 0, "engagement_rate_ranking": 1}.get(name, 2)
            return RANKINGS[(c.ranking_seed + offset) % len(RANKINGS)]
        purchase_types = ("offsite_conversion.fb_pixel_purchase", "omni_purchase")
        base_actions = [
            ("link_click", link),
            ("landing_page_view", lpv),
            ("lead", c.leads),
            *((t, c.purchases) for t in purchase_types),
        ]
        if name == "unique_actions":
            entries = [
                {"action_type": t, "value": str(n * 95 // 100 if t != purchase_types[1] else n)}
                for t, n in base_actions
                if n
            ]
            return entries or None
        if name in ("cost_per_action_type", "cost_per_unique_action_type"):
            factor = 95 if name == "cost_per_unique_action_type" else 100
            entries = [
                {"action_type": t, "value": _cost(spend, n * factor // 100)}
                for t, n in base_actions
                if n * factor // 100
            ]
            return entries or None
        roas = _ratio(c.purchase_value, spend) if c.purchases else None
        stats: dict[str, tuple[str, Any]] = {
            "conversions": (purchase_types[0], c.purchases),
            "unique_conversions": (purchase_types[0], c.purchases),
            "conversion_values": (
                purchase_types[0],
                _money(c.purchase_value) if c.purchases else None,
            ),
            "cost_per_conversion": (purchase_types[0], _cost(spend, c.purchases)),
            "cost_per_unique_conversion": (purchase_types[0], _cost(spend, c.purchases)),
            "purchase_roas": ("omni_purchase", roas),
            "website_purchase_roas": (purchase_types[0], roas),
            "average_purchases_conversion_value": (
                "omni_purchase",
                _money(c.purchase_value / c.purchases) if c.purchases else None,
            ),
            "conversion_leads": ("lead", c.leads),
            "conversion_lead_rate": ("lead", _ratio(c.leads, link, 100) if c.leads else None),
            "cost_per_conversion_lead": ("lead", _cost(spend, c.leads)),
            "outbound_clicks": ("outbound_click", self.outbound),
            "unique_outbound_clicks": ("outbound_click", self.unique_outbound),
            "outbound_clicks_ctr": ("outbound_click", _ratio(self.outbound, imps, 100)),
            "unique_outbound_clicks_ctr": (
                "outbound_click",
                _ratio(self.unique_outbound, reach, 100),
            ),
            "cost_per_outbound_click": ("outbound_click", _cost(spend, self.outbound)),
            "cost_per_unique_outbound_click": (
                "outbound_click",
                _cost(spend, self.unique_outbound),
            ),
            "website_ctr": ("link_click", _ratio(link, imps, 100)),
            "ad_click_actions": ("ad_click", clicks),
            "cost_per_ad_click": ("ad_click", _cost(spend, clicks)),
            "ad_impression_actions": ("ad_impression", imps),
            "cost_per_one_thousand_ad_impression": (
                "ad_impression",
                _cost(spend, imps / 1000) if imps else None,
            ),
        }
        if name in stats:
            return _stats(*stats[name])
        # --- video ---------------------------------------------------------------------
        if name == "video_play_actions":
            return _video_entries(c, plays)
        if name in VIDEO_MARKS:
            return _video_entries(c, int(plays * VIDEO_MARKS[name]))
        if name == "unique_video_continuous_2_sec_watched_actions":
            return _video_entries(c, int(plays * VIDEO_MARKS[name[7:]] * 0.9))
        if name == "unique_video_view_15_sec":
            return _video_entries(c, int(plays * VIDEO_MARKS["video_15_sec_watched_actions"] * 0.9))
        if name == "video_avg_time_watched_actions":
            return _stats("video_view", "7") if plays else None
        if name == "video_time_watched_actions":
            return _stats("video_view", str(plays * 7)) if plays else None
        if name == "cost_per_thruplay":
            thru = int(plays * VIDEO_MARKS["video_thruplay_watched_actions"])
            return _stats("video_view", _cost(spend, thru))
        if name == "cost_per_15_sec_video_view":
            return _stats("video_view", _cost(spend, int(plays * 0.21)))
        if name == "cost_per_2_sec_continuous_video_view":
            return _stats("video_view", _cost(spend, int(plays * 0.62)))
        if FIELD_KINDS.get(name) == "h":
            if not plays:
                return None
            points = {
                "video_play_curve_actions": 22,
                "video_play_retention_0_to_15s_actions": 16,
                "video_play_retention_20_to_60s_actions": 41,
                "video_play_retention_graph_actions": 61,
            }[name]
            curve = [int(100 * 0.86**i) for i in range(points)]
            return [{"action_type": "video_view", "value": curve}]
        # --- result indicators ---------------------------------------------------------
        if name in RESULT_FIELDS:
            if c.objective is None:
                return None
            indicator = RESULT_INDICATOR.get(c.objective, "actions:link_click")
            count = {
                "actions:offsite_conversion.fb_pixel_purchase": c.purchases,
                "actions:lead": c.leads,
                "actions:landing_page_view": lpv,
                "reach": reach,
                "actions:link_click": link,
            }[indicator]
            if name in ("results", "objective_results"):
                return _results(indicator, str(count))
            if name == "cost_per_result":
                return _results(indicator, _cost(spend, count))
            if name == "link_clicks_per_results":
                return _results(indicator, _ratio(link, count))
            return _results(indicator, _ratio(count, imps, 100))
        return None  # accepted; no such data in the sandbox (see module docstring)


RESULT_FIELDS = frozenset(
    {
        "results",
        "objective_results",
        "cost_per_result",
        "result_rate",
        "objective_result_rate",
        "link_clicks_per_results",
    }
)


__all__ = [
    "CORE_FIELDS",
    "EXTRA_FIELDS",
    "NOT_WITH_HOURLY",
    "RowContext",
    "UNIQUE_FIELDS",
    "extra_values",
]
