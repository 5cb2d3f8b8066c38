"""Ad creatives in the sandbox: one per ad (some ads of an ad set share one), seeded.

A creative carries what the ad said and showed: name, title, body, call to action, the
landing URL with its tracking parameters, `url_tags` (appended by Meta to the landing URL at
click time), a thumbnail, and an `object_story_spec` whose key says what kind of story it
is (`link_data` for link and carousel ads, `video_data` for video ads). Landing URLs are the
kind advertisers write by hand: percent-encoded and `+`-encoded values, UTF-8 campaign
names, a repeated `utm_source`, parameters after a `#` for a single-page app, upper-case
keys, empty values and Meta's dynamic `{{campaign.name}}` macros in `url_tags`.

Graph surface (served from Meta's spec by ``ads_objects``): ``GET act_<id>/adcreatives``
and ``/{adset}/adcreatives`` (creatives that are not DELETED), ``/{ad}/adcreatives`` and
``GET <creative id>`` (any status), and the ads' ``creative`` field (``{"id": …}``). A
creative whose ads are all deleted or archived is DELETED (readable by id, no longer listed).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from everreach.sandbox.core import Sandbox

FORMATS = ("IMAGE", "VIDEO", "CAROUSEL")

#: (landing URL, url_tags) patterns advertisers really write; `{n}` is the creative's number.
LANDINGS: tuple[tuple[str, str], ...] = (
    (
        "https://everreach.example/spring-sale?utm_source=facebook&utm_medium=paid_social"
        "&utm_campaign=spring_sale_2026&utm_content=creative_{n}",
        "",
    ),
    (
        "https://shop.everreach.example/collections/caf%C3%A9-%C3%A9t%C3%A9?utm_source=meta"
        "&utm_medium=cpc&utm_campaign=Caf%C3%A9+%C3%89t%C3%A9+2026&utm_term=running+shoes",
        "",
    ),
    (
        "https://everreach.example/landing?utm_source=facebook&utm_medium=paid_social"
        "&utm_source=instagram&utm_campaign=always_on&ref=ads",
        "",
    ),
    (
        "https://everreach.example/app#/signup?utm_source=facebook&utm_medium=paid_social"
        "&utm_campaign=spa_signup",
        "",
    ),
    (
        "https://everreach.example/pricing",
        "utm_source=facebook&utm_medium=paid&utm_campaign={{campaign.name}}"
        "&utm_content={{ad.name}}",
    ),
    (
        "https://everreach.example/blog/reach-guide?UTM_Source=Facebook&utm_medium=social#pricing",
        "",
    ),
    (
        "https://everreach.example/?utm_source=facebook&utm_medium=paid_social"
        "&utm_campaign=brand%20awareness&utm_term=&utm_content=video_15s",
        "",
    ),
    (
        "https://www.everreach.example/de/angebote?gclid=&utm_campaign=Fr%C3%BChling%20%26%20Sommer"
        "&utm_source=fb&utm_medium=paid_social",
        "utm_content=story&utm_medium=paid_social_override",
    ),
)
TITLES = (
    "Reach everyone, everywhere",
    "Spring sale: 20% off",
    "Your customers are on Messenger",
    "Café Été – new collection",
    "Try EverReach free for 30 days",
)
BODIES = (
    "Free shipping on everything this week only.",
    "Join 20,000 teams who reach customers where they already are.",
    "Das Original – jetzt 20 % günstiger.",
    "Answer every message in one inbox. 🚀",
    "See what your ads really earn.",
)
CTAS = ("SHOP_NOW", "LEARN_MORE", "SIGN_UP", "GET_OFFER", "CONTACT_US")


def _digits(*parts: object) -> str:
    h = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return str(120_200_000_000_000_000 + int(h[:10], 16) % 1_000_000_000_000)


def _hex(*parts: object, n: int = 32) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:n]


def ad_formats(acct: Any) -> np.ndarray:
    """Per ad of the account (in ad order): 0 image, 1 video, 2 carousel."""
    return np.asarray([_format_code(ad["id"]) for ad in acct.ads], dtype=np.int64)


def _format_code(ad_id: str) -> int:
    return int(_hex("format", ad_id, n=4), 16) % 10 // 4  # 40 % image, 40 % video, 20 % carousel


def page_of(acct: Any) -> tuple[str, str]:
    """The Facebook Page an account's ads run as: (page id, name)."""
    return str(108_000_000_000_001 + acct.index), f"{acct.name} Page"


def build(state: Any, sandbox: Sandbox) -> None:
    """Create every account's creatives and link them to the ads (``ads.register`` registers
    the creative nodes)."""
    state.creatives = {}
    for acct in state.accounts.values():
        acct.creatives = []
        page_id, _ = page_of(acct)
        for pos, ad in enumerate(acct.ads):
            # Every third ad of an ad set reuses the previous ad's creative (a common setup).
            if pos % 3 == 2 and acct.ads[pos - 1]["adset_id"] == ad["adset_id"]:
                ad["creative"] = {"id": acct.ads[pos - 1]["creative"]["id"]}
                continue
            creative = _creative(acct, ad, len(acct.creatives), page_id)
            acct.creatives.append(creative)
            state.creatives[creative["id"]] = (acct, creative)
            ad["creative"] = {"id": creative["id"]}
        # Advertisers clean up: a creative whose ads are all deleted or archived is deleted.
        live = {
            ad["creative"]["id"] for ad in acct.ads if ad["status"] not in ("DELETED", "ARCHIVED")
        }
        for creative in acct.creatives:
            if creative["id"] not in live:
                creative["status"] = "DELETED"


def _creative(acct: Any, ad: dict, n: int, page_id: str) -> dict:
    code = _format_code(ad["id"])
    fmt = FORMATS[code]
    cid = _digits("creative", acct.id, n)
    link, url_tags = LANDINGS[(acct.index * 3 + n) % len(LANDINGS)]
    link = link.replace("{n}", str(n + 1))
    title = TITLES[(n + acct.index) % len(TITLES)]
    body = BODIES[(n * 2 + acct.index) % len(BODIES)]
    cta = CTAS[(n + 2 * acct.index) % len(CTAS)]
    image_hash = _hex("image", cid)
    thumb = (
        f"https://scontent.xx.fbcdn.net/v/t45.1600-4/{_digits('img', cid)}_n.jpg"
        f"?stp=dst-jpg_p64x64_q75_tt6&_nc_cat=1&ccb=1-7&_nc_sid=890911&_nc_ohc={_hex('ohc', cid, n=11)}"
        f"&_nc_ht=scontent.xx&oh=00_{_hex('oh', cid, n=40)}&oe=6A1B2C3D"
    )
    call_to_action = {"type": cta, "value": {"link": link}}
    if fmt == "VIDEO":
        video_id = _digits("video", cid)
        spec_key = "video_data"
        story: dict[str, Any] = {
            "video_id": video_id,
            "title": title,
            "message": body,
            "image_url": thumb,
            "call_to_action": call_to_action,
        }
        object_type = "VIDEO"
    else:
        video_id = None
        spec_key = "link_data"
        story = {
            "link": link,
            "message": body,
            "name": title,
            "image_hash": image_hash,
            "call_to_action": call_to_action,
        }
        if fmt == "CAROUSEL":
            story["child_attachments"] = [
                {
                    "link": link,
                    "name": f"{title} ({card})",
                    "image_hash": _hex("card", cid, card),
                    "call_to_action": {"type": cta, "value": {"link": link}},
                }
                for card in (1, 2, 3)
            ]
            story["multi_share_optimized"] = True
        object_type = "SHARE"
    creative: dict[str, Any] = {
        "id": cid,
        "account_id": acct.id,
        "name": f"{ad['name']} · {fmt.lower()} creative",
        "title": title,
        "body": body,
        "call_to_action_type": cta,
        "call_to_action": call_to_action,
        "object_type": object_type,
        "object_story_spec": {"page_id": page_id, spec_key: story},
        "effective_object_story_id": f"{page_id}_{_digits('post', cid)[-15:]}",
        "actor_id": page_id,
        "link_url": link,
        "url_tags": url_tags,
        "thumbnail_url": thumb,
        "image_url": thumb.replace("p64x64", "p1080x1080"),
        "image_hash": image_hash,
        "status": "ACTIVE",
    }
    if video_id:
        creative["video_id"] = video_id
    if not url_tags:
        del creative["url_tags"]
    return creative


__all__ = [
    "FORMATS",
    "LANDINGS",
    "ad_formats",
    "build",
    "page_of",
]
