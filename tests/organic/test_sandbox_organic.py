"""The sandbox's organic module over real HTTP: Meta's rules the client must survive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from organic_helpers import small_config

from everreach.sandbox.organic import IG_VALID_METRICS, OrganicState
from everreach.sandbox.testing import RunningSandbox, running_sandbox


@pytest.fixture(scope="module")
def sb() -> Iterator[RunningSandbox]:
    with running_sandbox(small_config()) as handle:
        yield handle


@pytest.fixture
def http(sb: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{sb.base_url}/v25.0", params={"access_token": "user-token"}
    ) as client:
        yield client


def _state(sb: RunningSandbox) -> OrganicState:
    return sb.sandbox.domains["organic"]


def _media_of_each_kind(state: OrganicState) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for acct in list(state.ig_accounts.values())[:1]:  # account 0: no conversion cut-off
        for post in acct.media + acct.stories[:2]:
            if post.no_insights is None:
                out.setdefault((post.media_type, post.product_type), post.id)
    return out


def test_every_media_kind_accepts_exactly_its_metrics(
    sb: RunningSandbox, http: httpx.Client
) -> None:
    kinds = _media_of_each_kind(_state(sb))
    assert set(kinds) == set(IG_VALID_METRICS)
    every = set().union(*IG_VALID_METRICS.values())
    for kind, media_id in kinds.items():
        valid = IG_VALID_METRICS[kind]
        ok = http.get(f"/{media_id}/insights", params={"metric": ",".join(sorted(valid))})
        assert ok.status_code == 200, (kind, ok.text)
        assert {d["name"] for d in ok.json()["data"]} == valid
        for metric in sorted(every - valid):
            bad = http.get(f"/{media_id}/insights", params={"metric": f"reach,{metric}"})
            assert bad.status_code == 400
            assert metric in bad.json()["error"]["message"]


def test_deprecated_metric_fails_the_whole_call_naming_it(
    sb: RunningSandbox, http: httpx.Client
) -> None:
    media_id = _media_of_each_kind(_state(sb))[("VIDEO", "REELS")]
    answer = http.get(f"/{media_id}/insights", params={"metric": "views,reach,plays"})
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["code"] == 100
    assert "plays" in error["message"]


def test_refused_media_and_album_children(sb: RunningSandbox, http: httpx.Client) -> None:
    state = _state(sb)
    converted = next(
        p for a in state.ig_accounts.values() for p in a.media if p.no_insights == "conversion"
    )
    err = http.get(f"/{converted.id}/insights", params={"metric": "reach"}).json()["error"]
    assert (err["code"], err["error_subcode"]) == (100, 2108006)
    album = next(p for a in state.ig_accounts.values() for p in a.media if p.children)
    err = http.get(f"/{album.children[0]}/insights", params={"metric": "reach"}).json()
    assert "error" in err


def test_story_insights_vanish_after_24_hours(sb: RunningSandbox, http: httpx.Client) -> None:
    state = _state(sb)
    acct = next(iter(state.ig_accounts.values()))
    live = http.get(f"/{acct.id}/stories", params={"fields": "id,timestamp"}).json()["data"]
    assert live, "a story posted in the last 24 h"
    story_id = live[-1]["id"]
    params = {"metric": "views,reach"}
    assert http.get(f"/{story_id}/insights", params=params).json()["data"]
    start = sb.sandbox.now()
    try:
        sb.sandbox.advance(timedelta(hours=25))
        assert http.get(f"/{story_id}/insights", params=params).json() == {"data": []}
        assert story_id not in {s["id"] for s in http.get(f"/{acct.id}/stories").json()["data"]}
    finally:
        sb.sandbox.set_now(start)


def test_lifetime_counters_grow_with_the_clock(sb: RunningSandbox, http: httpx.Client) -> None:
    media_id = _media_of_each_kind(_state(sb))[("IMAGE", "FEED")]

    def read() -> dict:
        answer = http.get(f"/{media_id}/insights", params={"metric": "views,likes"})
        return {d["name"]: d["values"][0]["value"] for d in answer.json()["data"]}

    start = sb.sandbox.now()
    try:
        before = read()
        sb.sandbox.advance(timedelta(days=3))
        after = read()
    finally:
        sb.sandbox.set_now(start)
    assert all(after[k] >= before[k] for k in before)
    assert after["views"] > before["views"]


def test_account_insights_rules(sb: RunningSandbox, http: httpx.Client) -> None:
    acct = next(iter(_state(sb).ig_accounts.values()))
    day = {"since": "2026-11-18", "until": "2026-11-19", "period": "day"}
    needs_total = http.get(f"/{acct.id}/insights", params={**day, "metric": "views"})
    assert "metric_type=total_value" in needs_total.json()["error"]["message"]
    total = http.get(
        f"/{acct.id}/insights", params={**day, "metric": "views", "metric_type": "total_value"}
    ).json()
    assert total["data"][0]["total_value"]["value"] > 0
    old = http.get(
        f"/{acct.id}/insights",
        params={
            "metric": "follower_count",
            "period": "day",
            "since": "2026-09-01",
            "until": "2026-09-02",
        },
    )
    assert "last 30 days" in old.json()["error"]["message"]


def test_page_endpoints_require_a_page_token(sb: RunningSandbox, http: httpx.Client) -> None:
    page = next(iter(_state(sb).pages.values()))
    refused = http.get(f"/{page.id}/posts")
    assert refused.json()["error"]["code"] == 210
    assert "Page access token" in refused.json()["error"]["message"]
    token = http.get(f"/{page.id}", params={"fields": "access_token"}).json()["access_token"]
    posts = http.get(
        f"/{page.id}/posts",
        params={"access_token": token, "fields": "id,comments.summary(true).limit(0)"},
    ).json()
    assert posts["data"][0]["comments"]["summary"]["total_count"] >= 0
    too_long = http.get(
        f"/{page.id}/insights",
        params={
            "access_token": token,
            "metric": "page_media_view",
            "period": "day",
            "since": "2026-01-01",
            "until": "2026-11-01",
        },
    )
    assert "90 days" in too_long.json()["error"]["message"]
    fans = http.get(
        f"/{page.id}/insights",
        params={"access_token": token, "metric": "page_fans", "period": "day"},
    )
    assert "page_fans" in fans.json()["error"]["message"]


def test_batch_api_answers_each_item(sb: RunningSandbox) -> None:
    state = _state(sb)
    ok_id = _media_of_each_kind(state)[("IMAGE", "FEED")]
    bad_id = next(
        p.id for a in state.ig_accounts.values() for p in a.media if p.no_insights == "conversion"
    )
    batch = [
        {"method": "GET", "relative_url": f"{ok_id}/insights?metric=reach"},
        {"method": "GET", "relative_url": f"v25.0/{bad_id}/insights?metric=reach"},
    ]
    calls_before = sb.sandbox.stats["calls"]
    answer = httpx.post(
        f"{sb.base_url}/v25.0/", data={"access_token": "t", "batch": json.dumps(batch)}
    )
    items = answer.json()
    assert [i["code"] for i in items] == [200, 400]
    assert json.loads(items[1]["body"])["error"]["error_subcode"] == 2108006
    assert sb.sandbox.stats["calls"] - calls_before == 2  # each item is a Graph call
    too_many = httpx.post(
        f"{sb.base_url}/v25.0/", data={"access_token": "t", "batch": json.dumps(batch * 26)}
    )
    assert "Maximum batch size is 50" in too_many.json()["error"]["message"]
    no_token = httpx.post(f"{sb.base_url}/v25.0/", data={"batch": json.dumps(batch[:1])})
    assert json.loads(no_token.json()[0]["body"])["error"]["code"] == 104


def test_media_count_knob_reaches_ten_thousand() -> None:
    from everreach.sandbox.core import Sandbox

    sandbox = Sandbox(
        small_config(ig_accounts=2, ig_media_per_account=5_000, ig_stories_per_day=0, fb_pages=0)
    )
    sandbox.load_domains()
    state: OrganicState = sandbox.domains["organic"]
    assert sum(len(a.media) for a in state.ig_accounts.values()) == 10_000
