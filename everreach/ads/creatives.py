"""Ad creatives into `meta_ad_creative`: what each ad said and showed, and where it led.

Every configured account's creatives are listed (`GET act_<id>/adcreatives`); creatives the
ads point at (`meta_ad.creative_id`, written by the objects sync) that the listing no longer
shows — Meta stops listing deleted ones — are read one by one, so their final status is
recorded. Rows are merged with one `INSERT … ON CONFLICT DO UPDATE` in one transaction and
never deleted: an ad's history keeps pointing at its creative. Landing URLs are parsed with
`everreach.ads.utm` (the UTM values, every parameter, the page without its query).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from everreach.ads.sync import AccountInfo, AdAccount, account_token, fetch_account_info
from everreach.ads.utm import landing_url, parse_landing
from everreach.meta import GraphClient
from everreach.meta.errors import GraphAPIError
from everreach.warehouse.bulk import copy_rows, create_temp_like

CREATIVE_FIELDS = (
    "id,account_id,name,title,body,call_to_action_type,object_type,object_story_spec,"
    "link_url,url_tags,thumbnail_url,image_url,status,effective_object_story_id"
)
COLUMNS = (
    "creative_id",
    "ad_account_id",
    "name",
    "title",
    "body",
    "call_to_action_type",
    "object_type",
    "story_spec_type",
    "link_url",
    "url_tags",
    "landing_url",
    "landing_page",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "url_params",
    "has_dynamic_params",
    "thumbnail_url",
    "image_url",
    "effective_object_story_id",
    "status",
    "raw",
)
#: The keys of `object_story_spec` that say what kind of story a creative is.
STORY_TYPES = ("link_data", "video_data", "photo_data", "template_data", "text_data")


@dataclass
class CreativesResult:
    """What one creatives sync did."""

    accounts: list[AccountInfo] = field(default_factory=list)
    listed: int = 0
    read_by_id: int = 0  # referenced by ads but no longer listed (deleted on Meta)
    unreadable: list[str] = field(default_factory=list)  # kept as last seen
    written: int = 0
    api: dict[str, float] = field(default_factory=dict)


def destination(creative: Mapping[str, Any]) -> str | None:
    """Where the creative sends a click: its `link_url`, else the story's link or its call
    to action's link (video ads carry it there), else the first carousel card's."""
    if creative.get("link_url"):
        return str(creative["link_url"])
    spec = creative.get("object_story_spec") or {}
    for key in STORY_TYPES:
        story = spec.get(key)
        if not isinstance(story, dict):
            continue
        if story.get("link"):
            return str(story["link"])
        cta = story.get("call_to_action") or {}
        link = (cta.get("value") or {}).get("link") if isinstance(cta, dict) else None
        if link:
            return str(link)
        for card in story.get("child_attachments") or []:
            if isinstance(card, dict) and card.get("link"):
                return str(card["link"])
    return None


def creative_row(creative: Mapping[str, Any], account_id: str) -> tuple:
    """One `meta_ad_creative` row (in `COLUMNS` order) from a Graph creative."""
    spec = creative.get("object_story_spec") or {}
    story_type = next((k for k in STORY_TYPES if k in spec), None)
    url = landing_url(destination(creative), creative.get("url_tags"))
    landing = parse_landing(url)
    return (
        str(creative["id"]),
        str(creative.get("account_id") or account_id),
        creative.get("name"),
        creative.get("title"),
        creative.get("body"),
        creative.get("call_to_action_type"),
        creative.get("object_type"),
        story_type,
        destination(creative),
        creative.get("url_tags"),
        landing.url,
        landing.page,
        *(landing.utm.get(k) for k in ("utm_source", "utm_medium", "utm_campaign")),
        *(landing.utm.get(k) for k in ("utm_content", "utm_term")),
        orjson.dumps(landing.params).decode(),
        landing.has_dynamic_params,
        creative.get("thumbnail_url"),
        creative.get("image_url"),
        creative.get("effective_object_story_id"),
        creative.get("status"),
        orjson.dumps(creative).decode(),
    )


def _merge(cur: psycopg.Cursor, rows: Iterable[tuple]) -> int:
    create_temp_like(cur, "stage_meta_ad_creative", "meta_ad_creative", COLUMNS)
    copy_rows(cur, "stage_meta_ad_creative", COLUMNS, rows)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    updates = sql.SQL(", ").join(
        sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c))
        for c in COLUMNS
        if c != "creative_id"
    )
    cur.execute(
        sql.SQL(
            "insert into meta_ad_creative ({cols}) select distinct on (creative_id) {cols} "
            "from stage_meta_ad_creative order by creative_id "
            "on conflict (creative_id) do update set {updates}, synced_at = now()"
        ).format(cols=cols, updates=updates)
    )
    return cur.rowcount


def sync_creatives(
    client: GraphClient,
    conn: psycopg.Connection,
    accounts: Sequence[AdAccount],
    *,
    env: Mapping[str, str] | None = None,
) -> CreativesResult:
    """List every account's creatives, read the ones the ads still point at that are no
    longer listed, and merge them all into `meta_ad_creative` in one transaction."""
    result = CreativesResult()
    rows: dict[str, tuple] = {}
    for account in accounts:
        token = account_token(account, env)
        result.accounts.append(fetch_account_info(client, account, token))
        for creative in client.paginate(
            f"{account.node_id}/adcreatives", {"fields": CREATIVE_FIELDS, "limit": 200}, token=token
        ):
            rows[str(creative["id"])] = creative_row(creative, account.account_id)
            result.listed += 1
        referenced = [
            r[0]
            for r in conn.execute(
                "select distinct creative_id from meta_ad "
                "where ad_account_id = %s and creative_id is not null order by 1",
                (account.account_id,),
            ).fetchall()
        ]
        for creative_id in referenced:
            if creative_id in rows:
                continue
            try:
                creative = client.get(creative_id, {"fields": CREATIVE_FIELDS}, token=token)
            except GraphAPIError as exc:
                if exc.is_transient:
                    raise
                # Gone for good on Meta's side: keep the row as last seen.
                result.unreadable.append(creative_id)
                continue
            rows[creative_id] = creative_row(creative, account.account_id)
            result.read_by_id += 1
    with conn.transaction(), conn.cursor() as cur:
        result.written = _merge(cur, rows.values())
    result.api = client.metrics.as_dict()
    return result


__all__ = [
    "COLUMNS",
    "CREATIVE_FIELDS",
    "CreativesResult",
    "creative_row",
    "destination",
    "sync_creatives",
]
