"""Ad creatives in the sandbox: listed per account, readable by id, tied to the ads."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import requests

from everreach.sandbox.testing import RunningSandbox

TOKEN = {"access_token": "sandbox-token"}
ALL = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"]
FIELDS = (
    "id,name,title,body,call_to_action_type,object_type,object_story_spec,link_url,url_tags,"
    "thumbnail_url,status,account_id"
)


def account_of(sb: RunningSandbox) -> str:
    return requests.get(sb.url("me/adaccounts"), params=TOKEN).json()["data"][0]["id"]


def test_creatives_are_listed_and_tied_to_ads(sb: RunningSandbox):
    deleted = 0
    for acct in [
        a["id"] for a in requests.get(sb.url("me/adaccounts"), params=TOKEN).json()["data"]
    ]:
        listed = requests.get(
            sb.url(f"{acct}/adcreatives"), params={**TOKEN, "fields": FIELDS, "limit": 100}
        ).json()["data"]
        assert listed and all(c["status"] != "DELETED" for c in listed)
        for c in listed:
            assert c["account_id"] == acct.removeprefix("act_")
            (key,) = set(c["object_story_spec"]) - {"page_id"}
            assert key in ("link_data", "video_data")
            assert urlsplit(c["link_url"]).scheme == "https"
            assert c["thumbnail_url"].startswith("https://scontent.")
        ads = requests.get(
            sb.url(f"{acct}/ads"),
            params={**TOKEN, "fields": "id,creative", "effective_status": json.dumps(ALL)},
        ).json()["data"]
        listed_ids = {c["id"] for c in listed}
        creative_ids = {ad["creative"]["id"] for ad in ads}
        assert listed_ids <= creative_ids
        # creatives no live ad uses are deleted: no longer listed, still readable by id
        for missing in creative_ids - listed_ids:
            body = requests.get(sb.url(missing), params={**TOKEN, "fields": FIELDS}).json()
            assert body["status"] == "DELETED" and body["id"] == missing
            deleted += 1
    assert deleted


def test_landing_urls_look_like_advertisers_write_them(sb: RunningSandbox):
    urls = []
    for acct in requests.get(sb.url("me/adaccounts"), params=TOKEN).json()["data"]:
        urls += [
            (c["link_url"], c.get("url_tags", ""))
            for c in requests.get(
                sb.url(f"{acct['id']}/adcreatives"),
                params={**TOKEN, "fields": "link_url,url_tags", "limit": 100},
            ).json()["data"]
        ]
    text = " ".join(u + " " + t for u, t in urls)
    assert "%C3%A9" in text and "+" in text  # percent- and plus-encoded values
    assert "#/" in text  # parameters after a fragment (single-page app)
    assert "{{campaign.name}}" in text  # Meta's dynamic parameters in url_tags
    assert any(u.count("utm_source=") > 1 for u, _ in urls)  # a repeated key


def test_unknown_creative_field_is_refused(sb: RunningSandbox):
    acct = account_of(sb)
    resp = requests.get(sb.url(f"{acct}/adcreatives"), params={**TOKEN, "fields": "id,bogus"})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == (
        "(#100) Tried accessing nonexisting field (bogus) on node type (AdCreative)"
    )
