"""Insights breakdowns in the sandbox: which ones may be combined, and how a day splits.

Meta groups insights rows by ``breakdowns`` (new columns on the row) and splits the action
arrays by ``action_breakdowns`` (new keys on each action entry). Only some combinations
exist ("due to storage constraints", Meta's breakdowns guide, Combining Breakdowns); any
other answers ``(#100) Current combination of data breakdown columns (…) is invalid``
naming the action breakdowns and the breakdowns of the request.

How the numbers split (``Splitter``): every breakdown belongs to a *family* of related
columns (age × gender, country × region, publisher platform × position × device, …) with a
joint table of values and base shares (tilted per account, e.g. towards its home country,
and per ad). Each ad's day is split over the family's whole joint table, then summed onto
the requested columns, so ``age`` alone equals ``age, gender`` summed over gender, and every
family sums back to the unbroken day:

* impressions: a multinomial draw over the cells;
* clicks within impressions, link clicks within clicks, landing page views within link
  clicks: multivariate hypergeometric draws, so a cell never has more clicks than
  impressions and the counts add up exactly;
* spend (integer cents): a multinomial draw weighted by the cells' impressions times a
  per-cell price factor (no spend without impressions);
* conversions and leads: multinomial draws weighted by the cells' landing page views;
* reach: per cell from the ad's frequency, so cells of one ad add up to *more* than the
  ad's reach (people are counted in every cell they were seen in) — reach is never
  additive across breakdown values.

Two families in one request (e.g. ``product_id, age``) split hierarchically: the second
family splits each cell of the first.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from everreach.sandbox.insights_spec import ACTION_BREAKDOWNS, BREAKDOWNS


class BreakdownError(ValueError):
    """A breakdown request Meta refuses (the message is Meta's)."""


# --------------------------------------------------------------------------- value tables
AGES = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "Unknown")
AGE_SHARE = (0.015, 0.17, 0.28, 0.21, 0.14, 0.1, 0.07, 0.015)
GENDERS = ("female", "male", "unknown")
GENDER_SHARE = (0.52, 0.45, 0.03)

#: (country, region, share within the country) — Meta names regions without the country.
REGIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "US": (
        ("California", 0.24),
        ("Texas", 0.17),
        ("New York", 0.15),
        ("Florida", 0.14),
        ("Illinois", 0.1),
        ("Washington", 0.08),
        ("Massachusetts", 0.07),
        ("Unknown", 0.05),
    ),
    "DE": (
        ("Bavaria", 0.26),
        ("North Rhine-Westphalia", 0.3),
        ("Berlin", 0.18),
        ("Hamburg", 0.12),
        ("Baden-Württemberg", 0.14),
    ),
    "GB": (("England", 0.84), ("Scotland", 0.09), ("Wales", 0.05), ("Northern Ireland", 0.02)),
    "BR": (
        ("São Paulo (state)", 0.42),
        ("Rio de Janeiro (state)", 0.25),
        ("Minas Gerais", 0.2),
        ("Bahia", 0.13),
    ),
    "FR": (("Île-de-France", 0.55), ("Auvergne-Rhône-Alpes", 0.25), ("Occitanie", 0.2)),
    "CA": (("Ontario", 0.55), ("Quebec", 0.3), ("British Columbia", 0.15)),
    "AT": (("Vienna", 0.6), ("Tyrol", 0.4)),
    "PT": (("Lisbon", 0.6), ("Porto District", 0.4)),
}
#: Where an account's audience lives: its home country first (by its currency's region).
HOME_MIX: dict[str, tuple[tuple[str, float], ...]] = {
    "USD": (("US", 0.78), ("CA", 0.14), ("GB", 0.05), ("DE", 0.03)),
    "EUR": (("DE", 0.64), ("AT", 0.14), ("FR", 0.12), ("GB", 0.06), ("US", 0.04)),
    "GBP": (("GB", 0.82), ("US", 0.08), ("DE", 0.05), ("FR", 0.05)),
    "BRL": (("BR", 0.9), ("PT", 0.06), ("US", 0.04)),
}
DMAS = (
    ("New York", 0.18),
    ("Los Angeles", 0.14),
    ("Chicago", 0.09),
    ("Dallas-Ft. Worth", 0.08),
    ("San Francisco-Oakland-San Jose", 0.08),
    ("Houston", 0.07),
    ("Seattle-Tacoma", 0.06),
    ("Boston (Manchester)", 0.06),
    ("Miami-Ft. Lauderdale", 0.06),
    ("Unknown", 0.18),
)

#: (publisher_platform, platform_position, share, price factor, devices it serves on)
_MOBILE = ("iphone", "android_smartphone", "ipad", "android_tablet")
_ALL_DEVICES = (*_MOBILE, "desktop", "other")
PLACEMENTS: tuple[tuple[str, str, float, float, tuple[str, ...]], ...] = (
    ("facebook", "feed", 0.3, 1.0, _ALL_DEVICES),
    ("facebook", "facebook_reels", 0.06, 0.8, _MOBILE),
    ("facebook", "facebook_stories", 0.05, 0.75, _MOBILE),
    ("facebook", "marketplace", 0.04, 0.9, _ALL_DEVICES),
    ("facebook", "video_feeds", 0.03, 0.85, _ALL_DEVICES),
    ("facebook", "right_hand_column", 0.02, 0.5, ("desktop",)),
    ("facebook", "search", 0.01, 1.1, _ALL_DEVICES),
    ("facebook", "instream_video", 0.02, 0.9, _ALL_DEVICES),
    ("instagram", "feed", 0.2, 1.15, _MOBILE),
    ("instagram", "instagram_stories", 0.1, 0.85, _MOBILE),
    ("instagram", "instagram_reels", 0.08, 0.8, _MOBILE),
    ("instagram", "instagram_explore", 0.03, 0.9, _MOBILE),
    ("instagram", "instagram_explore_grid_home", 0.01, 0.9, _MOBILE),
    ("instagram", "instagram_profile_feed", 0.01, 1.0, _MOBILE),
    ("audience_network", "an_classic", 0.015, 0.4, _MOBILE),
    ("audience_network", "rewarded_video", 0.005, 0.6, _MOBILE),
    ("messenger", "messenger_inbox", 0.006, 0.7, (*_MOBILE, "desktop")),
    ("messenger", "messenger_stories", 0.002, 0.7, _MOBILE),
    ("threads", "threads_feed", 0.002, 0.9, _MOBILE),
)
DEVICE_SHARE = {
    "iphone": 0.42,
    "android_smartphone": 0.4,
    "ipad": 0.04,
    "android_tablet": 0.02,
    "desktop": 0.11,
    "other": 0.01,
}
DEVICE_PLATFORMS = (("mobile_app", 0.81), ("mobile_web", 0.11), ("desktop", 0.08))
#: Audience activity by hour of the day (00:00-00:59 … 23:00-23:59).
HOURLY_SHARE = (
    0.018, 0.011, 0.008, 0.007, 0.008, 0.013, 0.024, 0.036, 0.043, 0.046, 0.048, 0.05,
    0.052, 0.051, 0.049, 0.048, 0.049, 0.052, 0.058, 0.064, 0.068, 0.066, 0.054, 0.037,
)  # fmt: skip
FREQUENCY_VALUES = (
    ("1", 0.48),
    ("2", 0.2),
    ("3", 0.11),
    ("4", 0.07),
    ("5", 0.04),
    ("6-10", 0.06),
    ("11-20", 0.03),
    ("21+", 0.01),
)

#: Dynamic-creative asset breakdowns answer an object per asset (Meta: "…_asset": {…, "id"}).
ASSET_BREAKDOWNS = (
    "ad_format_asset",
    "body_asset",
    "call_to_action_asset",
    "description_asset",
    "image_asset",
    "link_url_asset",
    "title_asset",
    "video_asset",
)
MEDIA_BREAKDOWNS = (
    "media_asset_url",
    "media_creator",
    "media_destination_url",
    "media_format",
    "media_origin_url",
    "media_text_content",
    "media_type",
)
#: Values of the remaining, rarer breakdowns: a few values of the shape Meta reports.
SIMPLE_VALUES: dict[str, tuple[tuple[str, float], ...]] = {
    "ad_extension_domain": (("everreach.example", 0.8), ("shop.everreach.example", 0.2)),
    "ad_extension_url": (
        ("https://everreach.example/", 0.7),
        ("https://everreach.example/pricing", 0.3),
    ),
    "app_id": (("0", 1.0),),
    "breakdown_ad_objective": (("OUTCOME_SALES", 0.7), ("OUTCOME_TRAFFIC", 0.3)),
    "breakdown_reporting_ad_id": (("0", 1.0),),
    "coarse_conversion_value": (("low", 0.6), ("medium", 0.3), ("high", 0.1)),
    "comscore_market": (("0", 1.0),),
    "conversion_destination": (("website", 0.86), ("messaging", 0.1), ("phone_call", 0.04)),
    "creative_automation_asset_id": (("0", 1.0),),
    "creative_relaxation_asset_type": (("none", 0.8), ("text_optimization", 0.2)),
    "crm_advertiser_l12_territory_ids": (("0", 1.0),),
    "crm_advertiser_subvertical_id": (("0", 1.0),),
    "crm_advertiser_vertical_id": (("0", 1.0),),
    "crm_ult_advertiser_id": (("0", 1.0),),
    "fidelity_type": (("STOREKIT_RENDERED", 0.3), ("VIEW_THROUGH", 0.7)),
    "flexible_format_asset_type": (("single_image", 0.6), ("carousel", 0.4)),
    "gen_ai_asset_type": (("none", 0.85), ("text_generation", 0.15)),
    "hsid": (("0", 1.0),),
    "impression_view_time_advertiser_hour_v2": tuple(
        (f"{h:02d}:00:00 - {h:02d}:59:59", 1 / 24) for h in range(24)
    ),
    "is_auto_advance": (("false", 0.9), ("true", 0.1)),
    "is_conversion_id_modeled": (("false", 0.8), ("true", 0.2)),
    "is_rendered_as_delayed_skip_ad": (("false", 0.97), ("true", 0.03)),
    "landing_destination": (("website", 0.9), ("instant_experience", 0.1)),
    "marketing_messages_btn_name": (("Shop now", 0.6), ("Learn more", 0.4)),
    "mdsa_landing_destination": (("website", 1.0),),
    "mmm": (("0", 1.0),),
    "place_page_id": (),  # per account (its Pages), see Splitter
    "postback_sequence_index": (("0", 1.0),),
    "product_brand_breakdown": (("EverReach", 0.7), ("EverReach Studio", 0.3)),
    "product_category_breakdown": (("Apparel & Accessories", 0.6), ("Home & Garden", 0.4)),
    "product_custom_label_0_breakdown": (("bestseller", 0.4), ("new", 0.6)),
    "product_custom_label_1_breakdown": (("summer", 0.5), ("winter", 0.5)),
    "product_custom_label_2_breakdown": (("", 1.0),),
    "product_custom_label_3_breakdown": (("", 1.0),),
    "product_custom_label_4_breakdown": (("", 1.0),),
    "product_group_content_id_breakdown": (),  # per account (its catalog)
    "product_id": (),  # per account (its catalog)
    "redownload": (("false", 0.9), ("true", 0.1)),
    "reels_trending_topic": (("none", 1.0),),
    "rta_ugc_topic": (("none", 1.0),),
    "rule_set_id": (("0", 1.0),),
    "rule_set_name": (("none", 1.0),),
    "signal_source_bucket": (("pixel", 0.7), ("conversions_api", 0.3)),
    "skan_campaign_id": (("0", 1.0),),
    "skan_conversion_id": (("0", 1.0),),
    "skan_version": (("0", 1.0),),
    "sot_attribution_model_type": (("last_touch", 1.0),),
    "sot_attribution_window": (("7d_click_1d_view", 1.0),),
    "sot_channel": (("meta", 1.0),),
    "sot_event_type": (("purchase", 1.0),),
    "sot_source": (("meta", 1.0),),
    "standard_event_content_type": (("product", 0.8), ("product_group", 0.2)),
    "user_persona_id": (("0", 1.0),),
    "user_persona_name": (("none", 1.0),),
}

# --------------------------------------------------------------------------- families
#: Family name → its columns, finest first in Meta's combination order.
FAMILIES: dict[str, tuple[str, ...]] = {
    "demographics": ("age", "gender"),
    "geo": ("country", "region"),
    "dma": ("dma",),
    "placement": ("publisher_platform", "platform_position", "impression_device"),
    "device_platform": ("device_platform",),
    "frequency": ("frequency_value",),
    "hourly_advertiser": ("hourly_stats_aggregated_by_advertiser_time_zone",),
    "hourly_audience": ("hourly_stats_aggregated_by_audience_time_zone",),
    **{name: (name,) for name in ASSET_BREAKDOWNS},
    **{name: (name,) for name in MEDIA_BREAKDOWNS},
    **{name: (name,) for name in SIMPLE_VALUES if name not in ASSET_BREAKDOWNS},
}
FAMILY_OF: dict[str, str] = {dim: fam for fam, dims in FAMILIES.items() for dim in dims}
HOURLY = (
    "hourly_stats_aggregated_by_advertiser_time_zone",
    "hourly_stats_aggregated_by_audience_time_zone",
)

# --------------------------------------------------------------------------- combinations
_DEMOGRAPHIC_SETS = [{"age"}, {"gender"}, {"age", "gender"}]
_GEO_SETS = [{"country"}, {"region"}]
_PLACEMENT_SETS = [
    {"impression_device"},
    {"publisher_platform"},
    {"publisher_platform", "impression_device"},
    {"publisher_platform", "platform_position"},
    {"publisher_platform", "platform_position", "impression_device"},
]
#: Breakdown sets that may be joined with the action breakdowns action_type,
#: action_target_id and action_destination (Meta's starred permutations).
STARRED: frozenset[frozenset[str]] = frozenset(
    frozenset(s)
    for s in [
        set(),
        *_DEMOGRAPHIC_SETS,
        *_GEO_SETS,
        {"dma"},
        *_PLACEMENT_SETS,
        {"device_platform"},
        {"publisher_platform", "device_platform"},
        {"product_id"},
        *({"product_id"} | s for s in (*_DEMOGRAPHIC_SETS, *_GEO_SETS, *_PLACEMENT_SETS)),
        {"place_page_id"},
        *({h} for h in HOURLY),
        *({a} for a in ASSET_BREAKDOWNS),
        *({a} | s for a in ASSET_BREAKDOWNS for s in _DEMOGRAPHIC_SETS),
        {"frequency_value"},
        *({name} for name in SIMPLE_VALUES if name not in ("place_page_id", "product_id")),
    ]
)
#: Breakdowns Meta serves only without any action breakdown (action_breakdowns=[]).
WITHOUT_ACTIONS: frozenset[frozenset[str]] = frozenset(frozenset({m}) for m in MEDIA_BREAKDOWNS)
STAR_ACTIONS = frozenset({"action_type", "action_target_id", "action_destination"})
#: Other action breakdowns: (the group that must be requested together or alone, the
#: breakdown sets allowed with it). Each may be joined with the starred action breakdowns.
SPECIAL_ACTIONS: tuple[tuple[frozenset[str], frozenset[frozenset[str]]], ...] = (
    (
        frozenset({"action_device"}),
        frozenset(frozenset(s) for s in [set(), *_PLACEMENT_SETS]),
    ),
    (frozenset({"action_reaction"}), frozenset({frozenset()})),
    (
        frozenset({"action_carousel_card_id", "action_carousel_card_name"}),
        frozenset(frozenset(s) for s in [set(), *_DEMOGRAPHIC_SETS, *_GEO_SETS, *_PLACEMENT_SETS]),
    ),
    (frozenset({"action_video_sound"}), frozenset({frozenset()})),
    (frozenset({"action_video_type"}), frozenset({frozenset()})),
    (frozenset({"action_canvas_component_name"}), frozenset({frozenset()})),
    (frozenset({"conversion_destination"}), frozenset({frozenset()})),
    (frozenset({"is_business_ai_assisted"}), frozenset({frozenset()})),
    (frozenset({"matched_persona_id", "matched_persona_name"}), frozenset({frozenset()})),
    (frozenset({"signal_source_bucket"}), frozenset({frozenset()})),
    (frozenset({"standard_event_content_type"}), frozenset({frozenset()})),
)


def combination_error(action_breakdowns: Sequence[str], breakdowns: Sequence[str]) -> str:
    """Meta's message for breakdowns that cannot be combined."""
    columns = ", ".join([*action_breakdowns, *breakdowns])
    return f"(#100) Current combination of data breakdown columns ({columns}) is invalid"


def check_names(values: Sequence[str], param: str) -> None:
    """Raise Meta's enum error for the first value that is not a valid `param` name."""
    allowed = BREAKDOWNS if param == "breakdowns" else ACTION_BREAKDOWNS
    for i, value in enumerate(values):
        if value not in allowed:
            raise BreakdownError(
                f"(#100) {param}[{i}] must be one of the following values: {', '.join(allowed)}"
            )


def check_combination(action_breakdowns: Sequence[str], breakdowns: Sequence[str]) -> None:
    """Raise Meta's combination error unless the request is one Meta serves."""
    acts = frozenset(action_breakdowns)
    bds = frozenset(breakdowns)
    ok = False
    if not acts:
        ok = bds in STARRED or bds in WITHOUT_ACTIONS
    elif acts <= STAR_ACTIONS:
        ok = bds in STARRED
    else:
        for group, allowed in SPECIAL_ACTIONS:
            rest = acts - group
            if acts & group and rest <= STAR_ACTIONS:
                ok = bds in allowed
                break
    if not ok:
        raise BreakdownError(combination_error(action_breakdowns, breakdowns))


# --------------------------------------------------------------------------- the split
@dataclass(frozen=True)
class AccountLook:
    """What shapes an account's breakdown values: its index, currency and ids."""

    index: int
    currency: str
    pages: tuple[tuple[str, str], ...]  # (page id, name)
    products: tuple[tuple[str, str], ...]  # (product id, retailer id)


@dataclass(frozen=True)
class FamilyTable:
    """A family's joint value table for one account: rows of values, shares, prices."""

    dims: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    shares: np.ndarray  # sums to 1
    price: np.ndarray  # relative CPM per row


def _table(dims: tuple[str, ...], rows: list[tuple], shares: list[float], price=None):
    s = np.asarray(shares, dtype=float)
    p = np.ones(len(rows)) if price is None else np.asarray(price, dtype=float)
    return FamilyTable(dims, tuple(rows), s / s.sum(), p)


def _digits(*parts: object) -> str:
    """A stable 15-digit id from `parts` (asset ids, product ids)."""
    h = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return str(100_000_000_000_000 + int(h[:12], 16) % 800_000_000_000_000)


def asset_values(name: str, look: AccountLook) -> list[tuple[dict, float]]:
    """The dynamic-creative assets of an account for an asset breakdown (object values)."""
    i = look.index
    if name == "body_asset":
        texts = [
            "Free shipping on everything this week only.",
            "Join 20,000 teams who reach customers where they already are.",
            "Das Original – jetzt 20 % günstiger.",
        ]
        return [
            ({"text": t, "id": _digits(i, name, t)}, w)
            for t, w in zip(texts, (5, 3, 2), strict=True)
        ]
    if name == "title_asset":
        texts = ["Reach everyone, everywhere", "Your next favourite tool", "Sale ends Sunday"]
        return [
            ({"text": t, "id": _digits(i, name, t)}, w)
            for t, w in zip(texts, (5, 3, 2), strict=True)
        ]
    if name == "description_asset":
        texts = ["Try it free for 30 days", "No credit card needed"]
        return [
            ({"text": t, "id": _digits(i, name, t)}, w) for t, w in zip(texts, (6, 4), strict=True)
        ]
    if name == "call_to_action_asset":
        ctas = ["SHOP_NOW", "LEARN_MORE", "SIGN_UP"]
        return [
            ({"name": c, "id": _digits(i, name, c)}, w)
            for c, w in zip(ctas, (6, 3, 1), strict=True)
        ]
    if name == "link_url_asset":
        urls = ["https://everreach.example/spring", "https://everreach.example/pricing"]
        return [
            ({"website_url": u, "display_url": "everreach.example", "id": _digits(i, name, u)}, w)
            for u, w in zip(urls, (7, 3), strict=True)
        ]
    if name == "image_asset":
        return [
            (
                {
                    "hash": hashlib.md5(f"{i}:{n}".encode()).hexdigest(),
                    "url": f"https://scontent.xx.fbcdn.net/v/t45.1600-4/img_{i}_{n}.jpg",
                    "id": _digits(i, name, n),
                },
                w,
            )
            for n, w in ((1, 5), (2, 3), (3, 2))
        ]
    if name == "video_asset":
        return [
            (
                {
                    "video_id": _digits(i, "video", n),
                    "video_name": f"spring_cut_{n}.mp4",
                    "thumbnail_url": f"https://scontent.xx.fbcdn.net/v/t15.5256-10/thumb_{i}_{n}.jpg",
                    "url": f"https://www.facebook.com/{_digits(i, 'video', n)}/videos/",
                    "id": _digits(i, name, n),
                },
                w,
            )
            for n, w in ((1, 6), (2, 4))
        ]
    # ad_format_asset
    formats = ["Single image", "Carousel", "Single video"]
    return [
        ({"ad_format": f, "id": _digits(i, name, f)}, w)
        for f, w in zip(formats, (5, 3, 2), strict=True)
    ]


def _media_values(name: str, look: AccountLook) -> list[tuple[str, float]]:
    i = look.index
    values = {
        "media_asset_url": [f"https://scontent.xx.fbcdn.net/v/t45.1600-4/media_{i}_{n}.jpg" for n in (1, 2)],
        "media_creator": ["EverReach", "creator_partner"],
        "media_destination_url": ["https://everreach.example/spring", "https://everreach.example/"],
        "media_format": ["image", "video"],
        "media_origin_url": ["https://www.instagram.com/p/C0ever1/", "https://www.instagram.com/p/C0ever2/"],
        "media_text_content": ["Spring is here 🌷", "Meet the team"],
        "media_type": ["image", "video"],
    }[name]  # fmt: skip
    return list(zip(values, (0.6, 0.4), strict=True))


def family_table(family: str, look: AccountLook) -> FamilyTable:
    """The joint value table of `family` for an account."""
    return _family_table(family, look)


@lru_cache(maxsize=512)
def _family_table(family: str, look: AccountLook) -> FamilyTable:
    dims = FAMILIES[family]
    if family == "demographics":
        rows, shares = [], []
        for (age, a), (gender, g) in itertools.product(
            zip(AGES, AGE_SHARE, strict=True), zip(GENDERS, GENDER_SHARE, strict=True)
        ):
            tilt = 1.12 if (gender == "female") == (look.index % 2 == 0) else 0.9
            rows.append((age, gender))
            shares.append(a * g * tilt)
        return _table(dims, rows, shares)
    if family == "geo":
        rows, shares = [], []
        for country, cshare in HOME_MIX.get(look.currency, HOME_MIX["USD"]):
            for region, rshare in REGIONS[country]:
                rows.append((country, region))
                shares.append(cshare * rshare)
        return _table(dims, rows, shares)
    if family == "dma":
        usd = dict(HOME_MIX.get(look.currency, HOME_MIX["USD"])).get("US", 0.0)
        rows = [(name,) for name, _ in DMAS]
        shares = [s * usd + (1 - usd if name == "Unknown" else 0) for name, s in DMAS]
        return _table(dims, rows, shares)
    if family == "placement":
        rows, shares, price = [], [], []
        for platform, position, share, factor, devices in PLACEMENTS:
            total = sum(DEVICE_SHARE[d] for d in devices)
            for device in devices:
                rows.append((platform, position, device))
                shares.append(share * DEVICE_SHARE[device] / total)
                price.append(factor * (1.25 if device == "desktop" else 1.0))
        return _table(dims, rows, shares, price)
    if family == "device_platform":
        return _table(dims, [(v,) for v, _ in DEVICE_PLATFORMS], [s for _, s in DEVICE_PLATFORMS])
    if family in ("hourly_advertiser", "hourly_audience"):
        shift = 0 if family == "hourly_audience" else (look.index * 3) % 24
        rows = [(f"{h:02d}:00:00 - {h:02d}:59:59",) for h in range(24)]
        shares = [HOURLY_SHARE[(h + shift) % 24] for h in range(24)]
        return _table(dims, rows, shares)
    if family == "frequency":
        return _table(dims, [(v,) for v, _ in FREQUENCY_VALUES], [s for _, s in FREQUENCY_VALUES])
    if family in ASSET_BREAKDOWNS:
        pairs = asset_values(family, look)
        return _table(dims, [(v,) for v, _ in pairs], [w for _, w in pairs])
    if family in MEDIA_BREAKDOWNS:
        pairs = _media_values(family, look)
        return _table(dims, [(v,) for v, _ in pairs], [w for _, w in pairs])
    if family == "place_page_id":
        return _table(
            dims, [(pid,) for pid, _ in look.pages], [1.0 / (n + 1) for n in range(len(look.pages))]
        )
    if family in ("product_id", "product_group_content_id_breakdown"):
        rows = [(pid,) for pid, _ in look.products]
        return _table(dims, rows, [1.0 / (n + 1) ** 0.8 for n in range(len(rows))])
    pairs = SIMPLE_VALUES[family]
    return _table(dims, [(v,) for v, _ in pairs], [w for _, w in pairs])


@dataclass(frozen=True)
class Plan:
    """How one request's breakdowns map onto family tables.

    ``families`` in split order; per family the projection of its joint rows onto the
    requested columns (``proj``: joint row → projected cell) and the projected cell values.
    Cells of the request are the product of the families' projected cells (first family
    major), each a tuple of values in ``columns`` order.
    """

    columns: tuple[str, ...]  # the breakdown columns, in the order the request named them
    families: tuple[str, ...]
    proj: tuple[np.ndarray, ...]
    cell_values: tuple[tuple[tuple[Any, ...], ...], ...]  # per family: projected cells
    look: AccountLook

    @property
    def key(self) -> tuple:
        """What determines the split (for caches)."""
        return (self.families, self.columns, self.look)

    @property
    def ncells(self) -> int:
        """Cells of the request (rows per group and bucket, before dropping empty ones)."""
        n = 1
        for values in self.cell_values:
            n *= len(values)
        return n

    def cell_members(self) -> list[dict[str, Any]]:
        """Per cell: the breakdown columns and their values (in ``columns`` order)."""
        out = []
        for combo in itertools.product(*self.cell_values):
            named: dict[str, Any] = {}
            for fam, values in zip(self.families, combo, strict=True):
                for dim, value in zip(self._dims_of(fam), values, strict=True):
                    named[dim] = value
            out.append({c: named[c] for c in self.columns})
        return out

    def _dims_of(self, family: str) -> tuple[str, ...]:
        return tuple(d for d in FAMILIES[family] if d in self.columns)


def make_plan(breakdowns: Sequence[str], look: AccountLook) -> Plan:
    """The families, projections and cells for `breakdowns` (already validated)."""
    columns = tuple(dict.fromkeys(breakdowns))
    families = tuple(dict.fromkeys(FAMILY_OF[c] for c in columns))
    proj, cells = [], []
    for fam in families:
        table = family_table(fam, look)
        keep = [i for i, d in enumerate(table.dims) if d in columns]
        index: dict[tuple, int] = {}
        mapping = np.empty(len(table.rows), dtype=np.int64)
        for r, row in enumerate(table.rows):
            key = tuple(row[i] for i in keep)
            mapping[r] = index.setdefault(_hashable(key), len(index))
        values: list[tuple] = [()] * len(index)
        for r, row in enumerate(table.rows):
            values[mapping[r]] = tuple(row[i] for i in keep)
        proj.append(mapping)
        cells.append(tuple(values))
    return Plan(columns, families, tuple(proj), tuple(cells), look)


def _hashable(key: tuple) -> tuple:
    return tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in key)


#: Integer day metrics a split carries, in split order, with what each is drawn within.
ADDITIVE = (
    "impressions",
    "clicks",
    "inline_link_clicks",
    "landing_page_view",
    "spend",
    "lead",
    "p1",
    "p7",
    "p28",
    "pv",
)


def _multinomial(g: np.random.Generator, totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Split each of `totals` (n,) over the cells by `weights` (n, k); rows of zero weight
    fall back to equal shares. Sums are exact."""
    w = np.asarray(weights, dtype=float)
    sums = w.sum(axis=1, keepdims=True)
    p = np.where(sums > 0, w / np.where(sums > 0, sums, 1), 1.0 / w.shape[1])
    # multinomial wants sum(p[:-1]) <= 1 exactly; renormalize against rounding.
    p = p / p.sum(axis=1, keepdims=True)
    return g.multinomial(totals.astype(np.int64), p).astype(np.int64)


def _within(g: np.random.Generator, totals: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Split `totals` (n,) over cells without exceeding `parent` (n, k) in any cell
    (multivariate hypergeometric, drawn cell by cell). Sums are exact."""
    n, k = parent.shape
    out = np.zeros((n, k), dtype=np.int64)
    pool = parent.sum(axis=1).astype(np.int64)
    totals = totals.astype(np.int64)
    # A day that is still maturing can round a count one above its parent (the sandbox
    # scales each metric on its own); that excess is spread like the parent.
    excess = np.maximum(totals - pool, 0)
    left = totals - excess
    for c in range(k - 1):
        good = parent[:, c]
        pool -= good
        draw = g.hypergeometric(good, pool, left) if left.any() else np.zeros(n, dtype=np.int64)
        out[:, c] = draw
        left -= draw
    out[:, k - 1] = left
    if excess.any():
        out += _multinomial(g, excess, parent + 1e-9)
    return out


def split_family(
    g: np.random.Generator,
    day: dict[str, np.ndarray],
    table: FamilyTable,
    ad_tilt: np.ndarray,
) -> dict[str, np.ndarray]:
    """Split one day's per-ad metrics (`day`: name → (n,)) over a family's joint rows.

    `ad_tilt` (n, rows) multiplies the table's shares per ad. Returns name → (n, rows).
    """
    weights = table.shares[None, :] * ad_tilt
    out: dict[str, np.ndarray] = {}
    imps = _multinomial(g, day["impressions"], weights)
    out["impressions"] = imps
    out["clicks"] = _within(g, day["clicks"], imps)
    out["inline_link_clicks"] = _within(g, day["inline_link_clicks"], out["clicks"])
    out["landing_page_view"] = _within(g, day["landing_page_view"], out["inline_link_clicks"])
    out["spend"] = _multinomial(g, day["spend"], imps * table.price[None, :])
    conv_weight = out["landing_page_view"] + 1e-3 * imps
    for name in ("lead", "p1", "p7", "p28", "pv"):
        out[name] = _multinomial(g, day[name], conv_weight)
    return out


def cell_reach(
    g: np.random.Generator, imps: np.ndarray, ad_imps: np.ndarray, ad_reach: np.ndarray
) -> np.ndarray:
    """Reach per cell from the ad's frequency: a cell sees fewer repeats than the whole day
    (its frequency lies between 1 and the ad's), so cells add up to more than the ad's
    reach."""
    freq = ad_imps / np.maximum(ad_reach, 1)
    u = g.uniform(0.6, 0.95, imps.shape)
    cell_freq = 1.0 + (freq[:, None] - 1.0) * u  # between 1 and the ad's frequency
    reach = np.ceil(imps / cell_freq).astype(np.int64)
    return np.where(imps > 0, np.clip(reach, 1, imps), 0)


__all__ = [
    "ADDITIVE",
    "ASSET_BREAKDOWNS",
    "AccountLook",
    "BreakdownError",
    "FAMILIES",
    "FAMILY_OF",
    "HOURLY",
    "MEDIA_BREAKDOWNS",
    "Plan",
    "STAR_ACTIONS",
    "asset_values",
    "cell_reach",
    "check_combination",
    "check_names",
    "combination_error",
    "family_table",
    "make_plan",
    "split_family",
]
