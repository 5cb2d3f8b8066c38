"""Landing URLs and their UTM parameters, on URLs the way advertisers really write them."""

from __future__ import annotations

import pytest

from everreach.ads.creatives import creative_row, destination
from everreach.ads.utm import landing_url, parse_landing


def utm(url: str | None) -> dict:
    return parse_landing(url).utm


def test_plain_utm_url():
    landing = parse_landing(
        "https://Everreach.example/spring-sale?utm_source=facebook&utm_medium=paid_social"
        "&utm_campaign=spring_sale_2026&utm_content=creative_1"
    )
    assert landing.page == "https://everreach.example/spring-sale"
    assert landing.utm == {
        "utm_source": "facebook",
        "utm_medium": "paid_social",
        "utm_campaign": "spring_sale_2026",
        "utm_content": "creative_1",
        "utm_term": None,
    }
    assert not landing.has_dynamic_params


def test_percent_and_plus_encoded_utf8_values():
    got = utm(
        "https://shop.everreach.example/collections/caf%C3%A9-%C3%A9t%C3%A9?utm_source=meta"
        "&utm_medium=cpc&utm_campaign=Caf%C3%A9+%C3%89t%C3%A9+2026&utm_term=running+shoes"
    )
    assert got["utm_campaign"] == "Café Été 2026"
    assert got["utm_term"] == "running shoes"
    # an encoded '&' inside a value stays inside the value
    assert (
        utm("https://x.example/?utm_campaign=Fr%C3%BChling%20%26%20Sommer&utm_source=fb")[
            "utm_campaign"
        ]
        == "Frühling & Sommer"
    )


def test_repeated_keys_keep_the_first_value_and_every_value_is_kept():
    landing = parse_landing(
        "https://everreach.example/landing?utm_source=facebook&utm_medium=paid_social"
        "&utm_source=instagram&utm_campaign=always_on&ref=ads"
    )
    assert landing.utm["utm_source"] == "facebook"
    assert landing.params["utm_source"] == ["facebook", "instagram"]
    assert landing.params["ref"] == ["ads"]
    # an empty first occurrence does not hide a later value
    assert utm("https://x.example/?utm_source=&utm_source=fb")["utm_source"] == "fb"


def test_fragments():
    # a single-page app routes with '#/path?…': those parameters count
    spa = parse_landing(
        "https://everreach.example/app#/signup?utm_source=facebook&utm_medium=paid_social"
        "&utm_campaign=spa_signup"
    )
    assert spa.utm["utm_campaign"] == "spa_signup"
    assert spa.page == "https://everreach.example/app"
    # a plain anchor is not parameters
    anchored = parse_landing(
        "https://everreach.example/blog/reach-guide?UTM_Source=Facebook&utm_medium=social#pricing"
    )
    assert anchored.utm["utm_source"] == "Facebook"  # names case-insensitive, values kept
    assert "pricing" not in anchored.params
    # the real query string wins over the fragment's
    assert utm("https://x.example/?utm_source=a#/p?utm_source=b")["utm_source"] == "a"


def test_empty_values_and_odd_inputs():
    got = utm(
        "https://everreach.example/?utm_source=facebook&utm_medium=paid_social"
        "&utm_campaign=brand%20awareness&utm_term=&utm_content=video_15s"
    )
    assert got["utm_term"] is None and got["utm_campaign"] == "brand awareness"
    assert parse_landing(None).url is None
    assert parse_landing("   ").page is None
    assert parse_landing("not a url").page is None  # no scheme/host: no page, no error
    assert parse_landing("http://[::1/broken").page is None  # unparsable: kept as written


@pytest.mark.parametrize(
    "link, tags, expected",
    [
        ("https://x.example/p", "utm_source=fb", "https://x.example/p?utm_source=fb"),
        ("https://x.example/p?a=1", "utm_source=fb", "https://x.example/p?a=1&utm_source=fb"),
        ("https://x.example/p?", "?utm_source=fb", "https://x.example/p?utm_source=fb"),
        ("https://x.example/app#/s", "utm_source=fb", "https://x.example/app?utm_source=fb#/s"),
        ("https://x.example/p", "", "https://x.example/p"),
        (None, "utm_source=fb", None),
    ],
)
def test_url_tags_are_appended_before_the_fragment(link, tags, expected):
    assert landing_url(link, tags) == expected


def test_url_tags_with_metas_dynamic_parameters():
    landing = parse_landing(
        landing_url(
            "https://everreach.example/pricing",
            "utm_source=facebook&utm_medium=paid&utm_campaign={{campaign.name}}"
            "&utm_content={{ad.name}}",
        )
    )
    assert landing.has_dynamic_params
    assert landing.utm["utm_campaign"] == "{{campaign.name}}"
    # the advertiser's own URL comes first: its value wins over url_tags'
    both = parse_landing(
        landing_url("https://x.example/?utm_medium=paid_social", "utm_medium=override")
    )
    assert both.utm["utm_medium"] == "paid_social"
    assert both.params["utm_medium"] == ["paid_social", "override"]


def test_destination_of_each_story_type():
    link = {"object_story_spec": {"page_id": "1", "link_data": {"link": "https://a.example/"}}}
    video = {
        "object_story_spec": {
            "video_data": {
                "call_to_action": {"type": "SHOP_NOW", "value": {"link": "https://v.example/"}}
            }
        }
    }
    carousel = {
        "object_story_spec": {"link_data": {"child_attachments": [{"link": "https://c.example/"}]}}
    }
    assert destination(link) == "https://a.example/"
    assert destination(video) == "https://v.example/"
    assert destination(carousel) == "https://c.example/"
    assert destination({"link_url": "https://l.example/", **link}) == "https://l.example/"
    assert destination({}) is None
    row = creative_row({"id": "9", **video, "url_tags": "utm_source=fb"}, "1")
    assert row[7] == "video_data" and row[10] == "https://v.example/?utm_source=fb"
